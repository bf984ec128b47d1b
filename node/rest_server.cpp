#include "node/rest_server.hpp"

#include <httplib.h>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace sve {
namespace {

using nlohmann::json;

constexpr size_t kMaxBodyBytes = 1 << 20;  // an admin request is a few hundred bytes

void answer(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void refuse(httplib::Response& res, int status, const std::string& why) {
  answer(res, status, json{{"error", why}});
}

// The credentials a request carries in its headers, as an admin line
// carries them: a token, or a user and password; null without.
json credentials(const httplib::Request& req) {
  if (req.has_header("X-Auth-Token")) return {{"token", req.get_header_value("X-Auth-Token")}};
  if (req.has_header("X-Auth-Username"))
    return {{"user", req.get_header_value("X-Auth-Username")},
            {"password", req.get_header_value("X-Auth-Password")}};
  return nullptr;
}

// One admin line for `cmd` with `fields`, routed; the reply as HTTP.
void run(const RestServer::Route& route, const std::string& cmd, json fields,
         const httplib::Request& req, httplib::Response& res) {
  fields["cmd"] = cmd;
  // What only the server may say: who the caller is (its headers, not its
  // body) and where it came from (the connection).
  fields.erase("auth");
  if (json auth = credentials(req); !auth.is_null()) fields["auth"] = std::move(auth);
  fields["from"] = req.remote_addr;  // (in place of any the body had)
  auto reply = json::parse(route(fields.dump(), req.remote_addr), nullptr, false);
  if (!reply.is_object()) return refuse(res, 500, "the node sent no answer");
  if (reply.value("ok", false)) return answer(res, 200, reply.value("result", json::object()));
  refuse(res, reply.value("denied", false) ? 403 : 400,
         reply.value("error", std::string("refused")));
}

}  // namespace

Result<std::unique_ptr<RestServer>> RestServer::open(const HostPortAddress& address,
                                                     const std::string& certificates_dir,
                                                     Route route) {
  std::unique_ptr<RestServer> r(new RestServer());
  r->address_ = address;
  if (!certificates_dir.empty()) {
    std::string cert = certificates_dir + "/server-cert.pem";
    std::string key = certificates_dir + "/server-key.pem";
    r->server_ = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    r->https_ = true;
    if (!r->server_->is_valid())
      return make_error("REST API: cannot load " + cert + " and " + key, EINVAL);
  } else {
    r->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *r->server_;
  s.set_payload_max_length(kMaxBodyBytes);
  s.set_read_timeout(10);
  s.set_write_timeout(10);
  s.Post("/rest/v1/auth", [route](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("X-Auth-Username"))
      return refuse(res, 403, "log in with X-Auth-Username and X-Auth-Password");
    run(route, "session.login", json::object(), req, res);
  });
  s.Post(R"(/rest/v1/([a-z_]{1,32}\.[a-z_]{1,32}))",
         [route](const httplib::Request& req, httplib::Response& res) {
           json fields = json::object();
           if (!req.body.empty()) {
             fields = json::parse(req.body, nullptr, false);
             if (!fields.is_object())
               return refuse(res, 400, "the body must be a JSON object of the command's fields");
           }
           run(route, req.matches[1], std::move(fields), req, res);
         });
  // httplib's own refusals come without a body: say what to send instead.
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) return refuse(res, 404, "POST /rest/v1/<command>, as svectl names it");
    if (res.status == 400)
      return refuse(res, 400,
                    "a request needs a body with its length: the command's fields as a JSON "
                    "object, or {} (curl -d '{}')");
    if (res.status == 413) return refuse(res, 413, "a request body is at most 1 MiB");
    refuse(res, res.status, "not served here: POST /rest/v1/<command>");
  });
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        refuse(res, 500, "internal error");
      });
  if (!s.bind_to_port(address.host, address.port))
    return make_error("REST API: cannot listen on " + address.to_string(), EADDRINUSE);
  r->thread_ = std::thread([raw = r.get()] { raw->server_->listen_after_bind(); });
  return r;
}

RestServer::~RestServer() { stop(); }

void RestServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string RestServer::describe() const {
  return std::string(https_ ? "https://" : "http://") + address_.to_string() + "/rest/v1";
}

}  // namespace sve

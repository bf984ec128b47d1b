#include "admin/admin_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace sve {

namespace {
nlohmann::json& credentials() {
  static nlohmann::json auth;  // (one CLI invocation's)
  return auth;
}
AdminStreamConnect& transport() {
  static AdminStreamConnect secure;  // (one process's)
  return secure;
}
// The longest answer taken (a listing of thousands of objects fits).
constexpr size_t kMaxReplyBytes = 256u << 20;
}  // namespace

void set_admin_credentials(nlohmann::json auth) { credentials() = std::move(auth); }

void set_admin_transport(AdminStreamConnect secure) { transport() = std::move(secure); }

Result<nlohmann::json> admin_call(const HostPortAddress& address,
                                  const nlohmann::json& request, int timeout_ms) {
  auto fd = connect_tcp(address);
  if (!fd) return make_error("cannot reach sved admin API at " + address.to_string() +
                             ": " + fd.error().message, fd.error().code);
  if (timeout_ms > 0) {
    timeval limit{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(fd->get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  std::unique_ptr<AdminStream> stream;
  if (transport()) {
    auto made = transport()(fd->get(), address, timeout_ms);
    if (!made)
      return make_error("sved at " + address.to_string() + ": " + made.error().message,
                        made.error().code);
    stream = std::move(made.value());
  }
  std::string line;
  if (!credentials().is_null() && !request.contains("auth")) {
    nlohmann::json with = request;
    with["auth"] = credentials();
    line = with.dump() + "\n";
  } else {
    line = request.dump() + "\n";
  }
  if (stream ? !stream->send_all(line.data(), line.size())
             : !send_all(fd->get(), line.data(), line.size()))
    return make_error("connection to " + address.to_string() + " lost", EPIPE);
  std::string reply;
  char chunk[4096];
  for (;;) {
    auto nl = reply.find('\n');
    if (nl != std::string::npos) {
      reply.resize(nl);
      break;
    }
    ssize_t n;
    if (stream) {
      // Waits here, so that the timeout holds whatever TLS makes of the
      // socket's own.
      pollfd p{fd->get(), POLLIN, 0};
      if (stream->buffered() == 0 && timeout_ms > 0 && ::poll(&p, 1, timeout_ms) == 0)
        return make_error("sved at " + address.to_string() + " did not answer in time",
                          ETIMEDOUT);
      n = stream->recv_some(chunk, sizeof chunk);
    } else {
      n = ::recv(fd->get(), chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return make_error("sved at " + address.to_string() + " did not answer in time",
                          ETIMEDOUT);
    }
    if (n <= 0)
      return make_error("sved at " + address.to_string() + " closed the connection" +
                            (!stream && reply.empty()
                                 ? " (if its admin API speaks TLS, give svectl --tls-ca)"
                                 : ""),
                        EPIPE);
    reply.append(chunk, static_cast<size_t>(n));
    if (reply.size() > kMaxReplyBytes)
      return make_error("sved at " + address.to_string() + " sent an answer of over " +
                            std::to_string(kMaxReplyBytes >> 20) + " MiB", EPROTO);
  }
  try {
    return nlohmann::json::parse(reply);
  } catch (const std::exception& e) {
    return make_error(std::string("malformed reply from sved: ") + e.what(), EPROTO);
  }
}

}  // namespace sve

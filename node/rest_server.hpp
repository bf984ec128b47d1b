#pragma once
// The admin API over HTTP, beside the line protocol (docs/security.md,
// "REST API"), after SVC's REST API: the same commands, the same checks,
// the same audit. With cpp-httplib (Debian's, built with OpenSSL), HTTPS
// when a certificate directory is given.
//
//   POST /rest/v1/auth            X-Auth-Username, X-Auth-Password
//                                 -> {"token": ..., "expires": ...}
//   POST /rest/v1/<command>       X-Auth-Token (or the two above), a JSON
//                                 object of the command's fields (or none)
//                                 -> the command's result
//
// <command> is the admin command as svectl names it (vdisk.create,
// fcmap.start, audit.list, ...). 200 with the result; 403 when the caller
// is not let in (no or bad credentials, a role that may not); 400 for
// anything else refused, with {"error": why}. The request is routed
// exactly as an admin line is; the client's address is the connection's.
// No CAF: the node says where a line goes.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "hw/port/tcp.hpp"
#include "util/result.hpp"

namespace httplib {
class Server;
}

namespace sve {

class RestServer {
 public:
  // A JSON admin line and the client's address -> the reply line.
  using Route = std::function<std::string(const std::string& line, const std::string& peer)>;

  // Listens on `address`; HTTPS with `certificates_dir`/server-cert.pem and
  // server-key.pem when the directory is given (the NBD port's layout).
  static Result<std::unique_ptr<RestServer>> open(const HostPortAddress& address,
                                                  const std::string& certificates_dir,
                                                  Route route);
  ~RestServer();
  void stop();
  std::string describe() const;

 private:
  RestServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  HostPortAddress address_;
  bool https_ = false;
};

}  // namespace sve

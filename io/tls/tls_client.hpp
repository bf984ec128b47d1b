#pragma once
// The client side of TLS, with GnuTLS: svectl (and a node handing the
// cluster key to another) reaching an admin API that speaks TLS only
// (sved --admin-certificates). The server's certificate must chain to a CA
// in the file given and name the host connected to (an IP address in its
// subjectAltName, or a DNS name). GnuTLS stays inside tls_client.cpp.
#include <memory>
#include <string>

#include "io/tls/tls_server.hpp"
#include "util/result.hpp"

namespace sve {

class TlsClient {
 public:
  // Trusts the CA certificates (PEM) in `ca_file`.
  static Result<std::shared_ptr<TlsClient>> load(const std::string& ca_file);
  ~TlsClient();
  // The client side of a handshake on connected socket `fd` with the server
  // known as `host`, at most `timeout_ms` long: the session, or why not
  // (the server's certificate not trusted, or not for `host`; no TLS there).
  Result<std::unique_ptr<TlsSession>> connect(int fd, const std::string& host,
                                              unsigned timeout_ms = 30000) const;

 private:
  struct Impl;
  TlsClient();
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

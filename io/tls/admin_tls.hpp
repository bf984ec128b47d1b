#pragma once
// The admin API over TLS (docs/security.md, "The admin API over TLS"): the
// admin server's handshake with TlsServer, the client's with TlsClient,
// each as an admin_stream.hpp stream.
#include <memory>
#include <string>

#include "admin/admin_stream.hpp"
#include "util/result.hpp"

namespace sve {

// A handshake that takes longer is given up: a client that connects and
// says nothing holds a thread no longer.
inline constexpr unsigned kAdminHandshakeMs = 10000;

// The server's side, with server-cert.pem and server-key.pem from `dir`
// (no client certificate asked for: administrators prove themselves by
// password or token); or why they cannot be loaded.
Result<AdminStreamAccept> admin_tls_server(const std::string& dir);
// The client's side, trusting the CA certificates in `ca_file`.
Result<AdminStreamConnect> admin_tls_client(const std::string& ca_file);

}  // namespace sve

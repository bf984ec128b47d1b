#pragma once
// TLS for the host ports and the admin API, with GnuTLS (docs/security.md): the server's
// credentials and one connection's session. Pre-shared keys, read from a
// file of "identity:hexkey" lines (psktool's format, which nbdkit, qemu
// and libnbd read too), and X.509 certificates from a directory in qemu's
// and nbdkit's layout; the identity a client proved (its PSK identity, or
// its certificate's common name) is what names its host. GnuTLS stays
// inside tls_server.cpp.
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "util/result.hpp"

namespace sve {

// off: no STARTTLS; on: plain text or TLS, as the client asks; require:
// only TLS (a plain-text client is refused every option but STARTTLS).
enum class TlsMode { off, on, require };
const char* to_string(TlsMode mode);

// One TLS connection over a blocking socket (the socket stays the
// caller's). Not for use from two threads at once in one direction.
class TlsSession {
 public:
  ~TlsSession();
  bool send_all(const void* data, size_t size);
  bool recv_all(void* out, size_t size);
  // At least one byte (blocks until some come): the count, 0 at the end
  // of the stream, -1 on an error.
  ssize_t recv_some(void* out, size_t size);
  // Decrypted bytes waiting: recv_some returns at once.
  size_t pending() const;
  const std::string& identity() const { return identity_; }
  // Ends the TLS stream (close_notify), best effort.
  void bye();

 private:
  friend class TlsServer;
  friend class TlsClient;
  friend class TlsRecords;
  struct Impl;
  explicit TlsSession(std::unique_ptr<Impl> impl, std::string identity);
  std::unique_ptr<Impl> impl_;
  std::string identity_;
};

class TlsServer {
 public:
  // Pre-shared keys from `psk_file`, certificates from `certificates_dir`
  // (ca-cert.pem: the CA client certificates must chain to; server-cert.pem
  // and server-key.pem; ca-crl.pem if there is one); one of them or both.
  // Without `client_certificates` (the admin API: its clients prove
  // themselves by password or token) none is asked for, ca-cert.pem is not
  // needed, and a session's identity is empty. Refuses a key file that
  // does not parse (naming the line) and certificates GnuTLS cannot load
  // (naming the file).
  static Result<std::shared_ptr<TlsServer>> load(const std::string& psk_file,
                                                 const std::string& certificates_dir,
                                                 bool client_certificates = true);
  ~TlsServer();
  // The server side of a handshake on connected socket `fd`, at most
  // `timeout_ms` long; the error says why it failed (a wrong key, a client
  // that left).
  Result<std::unique_ptr<TlsSession>> accept(int fd, unsigned timeout_ms = 30000) const;
  size_t identities() const;  // pre-shared keys
  bool certificates() const;

 private:
  struct Impl;
  TlsServer();
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

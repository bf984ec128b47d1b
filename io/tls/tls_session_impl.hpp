#pragma once
// Inside io/tls only: a TlsSession's GnuTLS session, shared by the server's
// and the client's side.
#include <gnutls/gnutls.h>
#include <sys/types.h>

#include "io/tls/tls_server.hpp"

namespace sve {

struct TlsSession::Impl {
  gnutls_session_t session = nullptr;
  ~Impl() {
    if (session) gnutls_deinit(session);
  }
};

// GnuTLS asks to be called again (a signal).
bool tls_retry(ssize_t r);

// Runs `session`'s handshake over blocking socket `fd`, at most
// `timeout_ms` long: 0 or GnuTLS's error.
int tls_run_handshake(gnutls_session_t session, int fd, unsigned timeout_ms);

}  // namespace sve

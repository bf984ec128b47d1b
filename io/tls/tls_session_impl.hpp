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

}  // namespace sve

// TLS for the host ports, with GnuTLS (io/tls/tls_server.hpp).
#include "io/tls/tls_server.hpp"

#include "io/tls/tls_session_impl.hpp"
#include "util/hex.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

namespace sve {
namespace {

// NORMAL's ciphers, and the PSK key exchanges (ECDHE-PSK first: forward
// secrecy), as nbdkit and qemu ask for them. The server's order of ciphers
// wins, with ChaCha20 last: TLS 1.3 with a pre-shared key takes a SHA-256
// suite, and NORMAL lists CHACHA20-POLY1305 before AES-128-GCM, which
// AES-NI and carry-less multiplication make several times cheaper (the
// records cost 38% of a core's time with ChaCha20 under 4 KiB random I/O;
// docs/benchmarks.md). A client without AES still gets ChaCha20.
constexpr const char* kPskPriority =
    "NORMAL:%SERVER_PRECEDENCE:-CHACHA20-POLY1305:+CHACHA20-POLY1305:+ECDHE-PSK:+DHE-PSK:+PSK";

}  // namespace

// (GNUTLS_E_AGAIN on a blocking socket is its timeout running out: the
// deadline its owner set, so not tried again.)
bool tls_retry(ssize_t r) { return r == GNUTLS_E_INTERRUPTED; }

int tls_run_handshake(gnutls_session_t session, int fd, unsigned timeout_ms) {
  gnutls_transport_set_int(session, fd);
  gnutls_handshake_set_timeout(session, timeout_ms);
  int r;
  do {
    r = gnutls_handshake(session);
  } while (r < 0 && !gnutls_error_is_fatal(r));
  return r;
}

const char* to_string(TlsMode mode) {
  switch (mode) {
    case TlsMode::off: return "off";
    case TlsMode::on: return "on";
    case TlsMode::require: return "require";
  }
  return "?";
}

// ---- the server's credentials --------------------------------------------------

struct TlsServer::Impl {
  gnutls_psk_server_credentials_t psk = nullptr;
  std::map<std::string, std::vector<uint8_t>> keys;  // identity -> key
  gnutls_certificate_credentials_t x509 = nullptr;

  ~Impl() {
    if (psk) gnutls_psk_free_server_credentials(psk);
    if (x509) gnutls_certificate_free_credentials(x509);
  }
  Status load_psk(const std::string& path);
  Status load_certificates(const std::string& dir, bool client_certificates);
  bool client_certificates = true;  // asked for and verified (else not asked for)
  // GnuTLS asks for the key of the identity a client names.
  static int key_of(gnutls_session_t session, const char* identity, gnutls_datum_t* key) {
    auto* self = static_cast<const Impl*>(gnutls_session_get_ptr(session));
    auto it = self->keys.find(identity);
    if (it == self->keys.end()) return -1;
    key->data = static_cast<unsigned char*>(gnutls_malloc(it->second.size()));
    if (!key->data) return -1;
    std::memcpy(key->data, it->second.data(), it->second.size());
    key->size = static_cast<unsigned>(it->second.size());
    return 0;
  }
};

TlsServer::TlsServer() : impl_(new Impl()) {}
TlsServer::~TlsServer() = default;

size_t TlsServer::identities() const { return impl_->keys.size(); }

bool TlsServer::certificates() const { return impl_->x509 != nullptr; }

Result<std::shared_ptr<TlsServer>> TlsServer::load(const std::string& psk_file,
                                                   const std::string& certificates_dir,
                                                   bool client_certificates) {
  if (psk_file.empty() && certificates_dir.empty())
    return make_error("TLS needs pre-shared keys or certificates", EINVAL);
  std::shared_ptr<TlsServer> server(new TlsServer());
  if (!psk_file.empty())
    if (auto st = server->impl_->load_psk(psk_file); !st) return st.error();
  if (!certificates_dir.empty())
    if (auto st = server->impl_->load_certificates(certificates_dir, client_certificates); !st)
      return st.error();
  return server;
}

Status TlsServer::Impl::load_psk(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read the PSK file " + path + ": " + std::strerror(errno),
                             errno ? errno : EINVAL);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto where = [&](const std::string& what) {
      return make_error(path + ":" + std::to_string(number) + ": " + what, EINVAL);
    };
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 255)
      return where("expected IDENTITY:HEXKEY (as psktool writes)");
    std::string identity = line.substr(0, colon), hex = line.substr(colon + 1);
    if (hex.empty() || hex.size() % 2 || hex.size() > 2 * 1024)
      return where("the key must be an even number of hex digits (at most 1024 bytes)");
    auto key = parse_hex(hex);
    if (!key) return where("the key is not hex");
    if (!keys.emplace(identity, std::move(*key)).second)
      return where("identity '" + identity + "' is given twice");
  }
  if (keys.empty()) return make_error("the PSK file " + path + " has no keys", EINVAL);
  if (int r = gnutls_psk_allocate_server_credentials(&psk); r < 0)
    return make_error(std::string("TLS credentials: ") + gnutls_strerror(r), ENOMEM);
  gnutls_psk_set_server_credentials_function(psk, &Impl::key_of);
  gnutls_psk_set_server_known_dh_params(psk, GNUTLS_SEC_PARAM_MEDIUM);
  return ok_status();
}

Status TlsServer::Impl::load_certificates(const std::string& dir, bool want_clients) {
  client_certificates = want_clients;
  if (int r = gnutls_certificate_allocate_credentials(&x509); r < 0)
    return make_error(std::string("TLS credentials: ") + gnutls_strerror(r), ENOMEM);
  std::string ca = dir + "/ca-cert.pem", cert = dir + "/server-cert.pem",
              key = dir + "/server-key.pem", crl = dir + "/ca-crl.pem";
  if (want_clients) {  // (the CA clients' certificates must chain to)
    int trusted = gnutls_certificate_set_x509_trust_file(x509, ca.c_str(), GNUTLS_X509_FMT_PEM);
    if (trusted < 0) return make_error(ca + ": " + gnutls_strerror(trusted), EINVAL);
    if (trusted == 0) return make_error(ca + ": no CA certificate in it", EINVAL);
  }
  if (int r = gnutls_certificate_set_x509_key_file(x509, cert.c_str(), key.c_str(),
                                                   GNUTLS_X509_FMT_PEM);
      r < 0)
    return make_error(cert + " and " + key + ": " + gnutls_strerror(r), EINVAL);
  if (std::ifstream(crl).good())
    if (int r = gnutls_certificate_set_x509_crl_file(x509, crl.c_str(), GNUTLS_X509_FMT_PEM);
        r < 0)
      return make_error(crl + ": " + gnutls_strerror(r), EINVAL);
  gnutls_certificate_set_known_dh_params(x509, GNUTLS_SEC_PARAM_MEDIUM);
  return ok_status();
}

namespace {

// The common name of a verified client certificate: its identity.
Result<std::string> certificate_identity(gnutls_session_t session) {
  unsigned status = 0;
  if (int r = gnutls_certificate_verify_peers2(session, &status); r < 0)
    return make_error(std::string("TLS: the client certificate: ") + gnutls_strerror(r), EACCES);
  if (status != 0) {
    gnutls_datum_t text{};
    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
    std::string why = text.data ? reinterpret_cast<const char*>(text.data) : "not trusted";
    gnutls_free(text.data);
    return make_error("TLS: the client certificate: " + why, EACCES);
  }
  unsigned count = 0;
  const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
  if (!chain || count == 0) return make_error("TLS: the client sent no certificate", EACCES);
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init(&crt) < 0) return make_error("TLS: out of memory", ENOMEM);
  std::string name;
  char buf[256];
  size_t size = sizeof buf;
  if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0 &&
      gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) >= 0)
    name.assign(buf, size);
  gnutls_x509_crt_deinit(crt);
  if (name.empty()) return make_error("TLS: the client certificate has no common name", EACCES);
  return name;
}

}  // namespace

// ---- one connection ---------------------------------------------------------------

TlsSession::TlsSession(std::unique_ptr<Impl> impl, std::string identity)
    : impl_(std::move(impl)), identity_(std::move(identity)) {}
TlsSession::~TlsSession() = default;

Result<std::unique_ptr<TlsSession>> TlsServer::accept(int fd, unsigned timeout_ms) const {
  auto s = std::make_unique<TlsSession::Impl>();
  if (int r = gnutls_init(&s->session, GNUTLS_SERVER); r < 0)
    return make_error(std::string("TLS: ") + gnutls_strerror(r), ENOMEM);
  const char* bad = nullptr;
  if (int r = gnutls_priority_set_direct(s->session, kPskPriority, &bad); r < 0)
    return make_error(std::string("TLS priority: ") + gnutls_strerror(r), EINVAL);
  if (impl_->psk)
    if (int r = gnutls_credentials_set(s->session, GNUTLS_CRD_PSK, impl_->psk); r < 0)
      return make_error(std::string("TLS: ") + gnutls_strerror(r), EINVAL);
  if (impl_->x509) {
    if (int r = gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, impl_->x509); r < 0)
      return make_error(std::string("TLS: ") + gnutls_strerror(r), EINVAL);
  }
  if (impl_->x509 && impl_->client_certificates) {
    // Asked for, and verified below unless the client used a key instead.
    gnutls_certificate_server_set_request(s->session,
                                          impl_->psk ? GNUTLS_CERT_REQUEST : GNUTLS_CERT_REQUIRE);
    // Not the list of CAs it trusts: a client sends the certificate it has
    // (so that one from another CA is seen and refused, not left unsent).
    gnutls_certificate_send_x509_rdn_sequence(s->session, 1);
  }
  gnutls_session_set_ptr(s->session, impl_.get());
  int r = tls_run_handshake(s->session, fd, timeout_ms);
  if (r < 0) return make_error(std::string("TLS handshake: ") + gnutls_strerror(r), EACCES);
  if (gnutls_auth_get_type(s->session) == GNUTLS_CRD_CERTIFICATE) {
    if (!impl_->client_certificates)  // (the client proves itself otherwise)
      return std::unique_ptr<TlsSession>(new TlsSession(std::move(s), ""));
    auto name = certificate_identity(s->session);
    if (!name) return name.error();
    return std::unique_ptr<TlsSession>(new TlsSession(std::move(s), name.value()));
  }
  const char* identity = gnutls_psk_server_get_username(s->session);
  if (!identity || !*identity) return make_error("TLS handshake: no PSK identity", EACCES);
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(s), identity));
}

bool TlsSession::send_all(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = gnutls_record_send(impl_->session, p, size);
    if (tls_retry(n)) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

ssize_t TlsSession::recv_some(void* out, size_t size) {
  for (;;) {
    ssize_t n = gnutls_record_recv(impl_->session, out, size);
    if (tls_retry(n)) continue;
    if (n == GNUTLS_E_PREMATURE_TERMINATION) return 0;  // a client that just closed
    return n < 0 ? -1 : n;
  }
}

bool TlsSession::recv_all(void* out, size_t size) {
  auto* p = static_cast<uint8_t*>(out);
  while (size > 0) {
    ssize_t n = recv_some(p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

size_t TlsSession::pending() const { return gnutls_record_check_pending(impl_->session); }

void TlsSession::bye() { gnutls_bye(impl_->session, GNUTLS_SHUT_WR); }

}  // namespace sve

#include "io/tls/tls_client.hpp"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>

#include <cerrno>

#include "io/tls/tls_session_impl.hpp"

namespace sve {

struct TlsClient::Impl {
  gnutls_certificate_credentials_t x509 = nullptr;
  ~Impl() {
    if (x509) gnutls_certificate_free_credentials(x509);
  }
};

TlsClient::TlsClient() : impl_(new Impl()) {}
TlsClient::~TlsClient() = default;

Result<std::shared_ptr<TlsClient>> TlsClient::load(const std::string& ca_file) {
  std::shared_ptr<TlsClient> client(new TlsClient());
  if (int r = gnutls_certificate_allocate_credentials(&client->impl_->x509); r < 0)
    return make_error(std::string("TLS credentials: ") + gnutls_strerror(r), ENOMEM);
  int trusted = gnutls_certificate_set_x509_trust_file(client->impl_->x509, ca_file.c_str(),
                                                       GNUTLS_X509_FMT_PEM);
  if (trusted < 0) return make_error(ca_file + ": " + gnutls_strerror(trusted), EINVAL);
  if (trusted == 0) return make_error(ca_file + ": no CA certificate in it", EINVAL);
  return client;
}

namespace {

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Result<std::unique_ptr<TlsSession>> TlsClient::connect(int fd, const std::string& host,
                                                       unsigned timeout_ms) const {
  auto s = std::make_unique<TlsSession::Impl>();
  if (int r = gnutls_init(&s->session, GNUTLS_CLIENT); r < 0)
    return make_error(std::string("TLS: ") + gnutls_strerror(r), ENOMEM);
  if (int r = gnutls_set_default_priority(s->session); r < 0)
    return make_error(std::string("TLS priority: ") + gnutls_strerror(r), EINVAL);
  if (int r = gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, impl_->x509); r < 0)
    return make_error(std::string("TLS: ") + gnutls_strerror(r), EINVAL);
  // (SNI carries DNS names only; the certificate is checked against either.)
  if (!is_ip_address(host))
    gnutls_server_name_set(s->session, GNUTLS_NAME_DNS, host.data(), host.size());
  gnutls_session_set_verify_cert(s->session, host.c_str(), 0);
  int r = tls_run_handshake(s->session, fd, timeout_ms);
  if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    unsigned status = gnutls_session_get_verify_cert_status(s->session);
    gnutls_datum_t text{};
    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
    std::string why = text.data ? reinterpret_cast<const char*>(text.data) : "not trusted";
    gnutls_free(text.data);
    return make_error("TLS: the server's certificate: " + why, EACCES);
  }
  if (r < 0) return make_error(std::string("TLS handshake: ") + gnutls_strerror(r), EPROTO);
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(s), host));
}

}  // namespace sve

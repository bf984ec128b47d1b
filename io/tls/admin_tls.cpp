#include "io/tls/admin_tls.hpp"

#include <algorithm>

#include "io/tls/tls_client.hpp"
#include "io/tls/tls_server.hpp"

namespace sve {
namespace {

class TlsAdminStream final : public AdminStream {
 public:
  explicit TlsAdminStream(std::unique_ptr<TlsSession> session) : session_(std::move(session)) {}
  ~TlsAdminStream() override { session_->bye(); }
  ssize_t recv_some(void* out, size_t size) override { return session_->recv_some(out, size); }
  bool send_all(const void* data, size_t size) override { return session_->send_all(data, size); }
  size_t buffered() const override { return session_->pending(); }

 private:
  std::unique_ptr<TlsSession> session_;
};

}  // namespace

Result<AdminStreamAccept> admin_tls_server(const std::string& dir) {
  auto loaded = TlsServer::load("", dir, false);
  if (!loaded) return loaded.error();
  std::shared_ptr<const TlsServer> server = std::move(loaded.value());
  return AdminStreamAccept([server](int fd) -> Result<std::unique_ptr<AdminStream>> {
    auto session = server->accept(fd, kAdminHandshakeMs);
    if (!session) return session.error();
    return std::unique_ptr<AdminStream>(new TlsAdminStream(std::move(session.value())));
  });
}

Result<AdminStreamConnect> admin_tls_client(const std::string& ca_file) {
  auto loaded = TlsClient::load(ca_file);
  if (!loaded) return loaded.error();
  std::shared_ptr<const TlsClient> client = std::move(loaded.value());
  return AdminStreamConnect([client](int fd, const HostPortAddress& to,
                                     int timeout_ms) -> Result<std::unique_ptr<AdminStream>> {
    unsigned limit = timeout_ms > 0 ? std::min<unsigned>(timeout_ms, kAdminHandshakeMs)
                                    : kAdminHandshakeMs;
    auto session = client->connect(fd, to.host, limit);
    if (!session) return session.error();
    return std::unique_ptr<AdminStream>(new TlsAdminStream(std::move(session.value())));
  });
}

}  // namespace sve

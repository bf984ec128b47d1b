#include "admin/admin_server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "admin/admin_protocol.hpp"
#include "hw/port/tcp.hpp"

namespace sve {

AdminServer::AdminServer(UniqueFd listener, Handler handler)
    : listener_(std::move(listener)), handler_(std::move(handler)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() { acceptor_ = std::thread([this] { accept_loop(); }); }

void AdminServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [fd, t] : clients_) ::shutdown(fd, SHUT_RDWR);
  }
  // No shutdown() of the listener: its accept loop polls the stop flag, and
  // the socket may be shared with the configuration process, which keeps it.
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard lock(mu_);
  for (auto& [fd, t] : clients_) {
    if (t.joinable()) t.join();
    ::close(fd);
  }
  clients_.clear();
}

void AdminServer::accept_loop() {
  for (;;) {
    if (!wait_acceptable(listener_.get(), 200)) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      continue;
    }
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // listener shut down
    }
    set_nodelay(fd);
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    clients_.emplace_back(fd, std::thread([this, fd] { serve(fd); }));
  }
}

void AdminServer::serve(int fd) {
  std::string pending;
  char chunk[4096];
  for (;;) {
    auto nl = pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::string reply = handler_(line) + "\n";
      if (!send_all(fd, reply.data(), reply.size())) break;
      continue;
    }
    if (pending.size() > kMaxAdminLineBytes) break;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(chunk, static_cast<size_t>(n));
  }
  ::shutdown(fd, SHUT_RDWR);
  // The fd is closed by stop() or here, exactly once.
  std::lock_guard lock(mu_);
  for (auto it = clients_.begin(); it != clients_.end(); ++it) {
    if (it->first != fd) continue;
    if (!stopping_) {
      it->second.detach();
      clients_.erase(it);
      ::close(fd);
    }
    return;
  }
}

}  // namespace sve

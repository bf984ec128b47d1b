#include "admin/admin_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

#include <spdlog/spdlog.h>

#include "admin/admin_protocol.hpp"
#include "admin/admin_schema.hpp"
#include "hw/port/tcp.hpp"

namespace sve {

namespace {
// How long the accept loop rests after running out of descriptors or
// memory: the condition is the system's, and retrying at once would spin.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
}  // namespace

AdminServer::AdminServer(UniqueFd listener, Handler handler, AdminServerLimits limits,
                         AdminStreamAccept secure)
    : listener_(std::move(listener)),
      handler_(std::move(handler)),
      limits_(limits),
      secure_(std::move(secure)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() { acceptor_ = std::thread([this] { accept_loop(); }); }

void AdminServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& c : clients_) ::shutdown(c.fd, SHUT_RDWR);
  }
  // No shutdown() of the listener: its accept loop polls the stop flag, and
  // the socket may be shared with the configuration process, which keeps it.
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Client> left;
  {
    std::lock_guard lock(mu_);
    left.swap(clients_);
  }
  for (auto& c : left) {
    if (c.thread.joinable()) c.thread.join();
    ::close(c.fd);
  }
}

uint32_t AdminServer::open_connections() {
  std::lock_guard lock(mu_);
  reap_locked();
  return static_cast<uint32_t>(clients_.size());
}

// Joins the threads of finished connections and closes their sockets.
// (A finished thread has nothing left to do but return: the join is short.)
void AdminServer::reap_locked() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    if (it->thread.joinable()) it->thread.join();
    ::close(it->fd);
    it = clients_.erase(it);
  }
}

void AdminServer::accept_loop() {
  for (;;) {
    if (!wait_acceptable(listener_.get(), 200)) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      reap_locked();
      continue;
    }
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EAGAIN) continue;
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        reap_locked();  // frees descriptors, if ours are what ran out
      }
      spdlog::warn("admin: accept failed: {}; retrying", std::strerror(err));
      std::this_thread::sleep_for(kAcceptPause);
      continue;
    }
    set_nodelay(fd);
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    reap_locked();
    if (clients_.size() >= limits_.max_connections) {
      ++refused_;
      std::string line = admin_error("too many admin connections (the limit is " +
                                     std::to_string(limits_.max_connections) +
                                     "): try again later") +
                         "\n";
      timeval t{0, 100'000};  // a client that does not read is not waited for
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
      (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    timeval idle{static_cast<time_t>(limits_.idle_timeout_ms / 1000),
                 static_cast<suseconds_t>(limits_.idle_timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof idle);
    Client& c = clients_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, client = &c] { serve(client); });
  }
}

// The handler's answer; an exception it lets out is an error reply, never
// the end of the process.
std::string AdminServer::answer(const std::string& line, const std::string& peer) {
  try {
    return handler_(line, peer);
  } catch (const std::exception& e) {
    spdlog::error("admin: request failed with an exception: {} (request: {:.200})", e.what(),
                  line);
    return admin_error(std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("admin: request failed with an unknown exception (request: {:.200})", line);
    return admin_error("internal error");
  }
}

void AdminServer::serve(Client* client) {
  int fd = client->fd;
  const std::string peer = peer_ip(fd);
  std::unique_ptr<AdminStream> stream;
  if (secure_) {
    auto made = secure_(fd);
    if (!made) {
      spdlog::info("admin: a client at {} closed: {}", peer, made.error().message);
    } else {
      stream = std::move(made.value());
    }
  }
  auto send = [&](const std::string& bytes) {
    return stream ? stream->send_all(bytes.data(), bytes.size())
                  : send_all(fd, bytes.data(), bytes.size());
  };
  std::string pending;
  char chunk[4096];
  for (bool open = !secure_ || stream; open;) {
    auto nl = pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!send(answer(line, peer) + "\n")) break;
      continue;
    }
    if (pending.size() > kMaxAdminLineBytes) {
      (void)send(admin_error("request longer than " + std::to_string(kMaxAdminLineBytes) +
                             " bytes") +
                 "\n");
      break;
    }
    ssize_t n;
    if (stream) {
      // Waits here, so that an idle connection ends at the limit whatever
      // TLS makes of the socket's timeout.
      pollfd p{fd, POLLIN, 0};
      if (stream->buffered() == 0 && ::poll(&p, 1, static_cast<int>(limits_.idle_timeout_ms)) <= 0)
        break;  // idle past the limit
      n = stream->recv_some(chunk, sizeof chunk);
    } else {
      n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
    }
    if (n <= 0) break;  // closed, an error, or idle past the limit
    pending.append(chunk, static_cast<size_t>(n));
  }
  stream.reset();
  ::shutdown(fd, SHUT_RDWR);
  // The socket is closed and the thread joined by whoever reaps it.
  std::lock_guard lock(mu_);
  client->done = true;
}

}  // namespace sve

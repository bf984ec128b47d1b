#include "hw/port/tcp.hpp"

#include <poll.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

namespace sve {

Result<HostPortAddress> parse_address(const std::string& text) {
  HostPortAddress addr;
  std::string port_text = text;
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    if (colon > 0) addr.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos)
    return make_error("bad address '" + text + "': expected HOST:PORT", EINVAL);
  unsigned long port = std::stoul(port_text);
  if (port > 65535) return make_error("bad port in '" + text + "'", EINVAL);
  addr.port = static_cast<uint16_t>(port);
  return addr;
}

namespace {

Result<sockaddr_in> resolve(const HostPortAddress& address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(address.port);
  if (::inet_pton(AF_INET, address.host.c_str(), &sa.sin_addr) == 1) return sa;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  if (::getaddrinfo(address.host.c_str(), nullptr, &hints, &res) != 0 || !res)
    return make_error("cannot resolve host '" + address.host + "'", EINVAL);
  sa.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return sa;
}

}  // namespace

Result<UniqueFd> listen_tcp(const HostPortAddress& address) {
  auto sa = resolve(address);
  if (!sa) return sa.error();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return make_error(std::string("socket: ") + std::strerror(errno), errno);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa.value()), sizeof(sockaddr_in)) != 0)
    return make_error("cannot listen on " + address.to_string() + ": " +
                          std::strerror(errno), errno);
  if (::listen(fd.get(), 128) != 0)
    return make_error("cannot listen on " + address.to_string() + ": " +
                          std::strerror(errno), errno);
  return fd;
}

Result<UniqueFd> connect_tcp(const HostPortAddress& address, int timeout_ms) {
  auto sa = resolve(address);
  if (!sa) return sa.error();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return make_error(std::string("socket: ") + std::strerror(errno), errno);
  if (timeout_ms > 0) {  // (connect() waits at most the send timeout)
    timeval limit{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa.value()), sizeof(sockaddr_in)) != 0)
    return make_error("cannot connect to " + address.to_string() + ": " +
                          std::strerror(errno), errno);
  set_nodelay(fd.get());
  return fd;
}

bool wait_acceptable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int n = ::poll(&p, 1, timeout_ms);
  return n > 0;  // readable, or an error accept4 will report
}

void accept_connections(int listener, const char* name, const std::function<bool()>& stopping,
                        const std::function<bool(int fd)>& accepted) {
  for (;;) {
    if (!wait_acceptable(listener, 200)) {
      if (stopping()) return;
      continue;
    }
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        spdlog::warn("{}: cannot accept: {}", name, std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      return;  // the listener was shut down
    }
    set_nodelay(fd);
    if (!accepted(fd)) return;
  }
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_io_timeouts(int fd, uint32_t ms) {
  timeval limit{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
}

Result<std::pair<UniqueFd, UniqueFd>> loopback_tcp_pair() {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!listener.valid() || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return make_error(std::string("loopback listener: ") + std::strerror(errno), errno);
  UniqueFd out(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!out.valid() || ::connect(out.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error(std::string("loopback connect: ") + std::strerror(errno), errno);
  UniqueFd in(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!in.valid()) return make_error(std::string("loopback accept: ") + std::strerror(errno), errno);
  set_nodelay(out.get());
  set_nodelay(in.get());
  return std::make_pair(std::move(out), std::move(in));
}

bool recv_all(int fd, void* out, size_t size) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    ssize_t n = ::recv(fd, p, size, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool send_all(int fd, const void* data, size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

namespace {
std::string numeric(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, text, sizeof text);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, text, sizeof text);
  return text;
}
}  // namespace

std::string peer_ip(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return numeric(ss);
}

std::string local_ip(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return numeric(ss);
}

}  // namespace sve

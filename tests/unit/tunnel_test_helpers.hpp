#pragma once
// For the unit tests of the cluster tunnel: a loopback listener that echoes
// one connection (a node's middleman behind its tunnel), and a client that
// sends a text through a tunnel's route and returns what comes back.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "hw/port/tcp.hpp"
#include "util/fd.hpp"

namespace sve::test {

struct Echo {
  UniqueFd listener = std::move(listen_tcp(HostPortAddress{"127.0.0.1", 0}).value());
  std::atomic<size_t> echoed{0};
  std::thread thread{[this] {
    if (!wait_acceptable(listener.get(), 5000)) return;
    UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char buf[256];
    ssize_t n;
    while ((n = ::recv(c.get(), buf, sizeof buf, 0)) > 0) {
      echoed += size_t(n);
      send_all(c.get(), buf, size_t(n));
    }
  }};
  uint16_t port() {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }
  ~Echo() { thread.join(); }
};

// Sends `text` into the tunnel at `at`, ends its side, and returns what
// comes back until the other end closes (or 5 s pass).
inline std::string through(const HostPortAddress& at, const std::string& text) {
  auto fd = connect_tcp(at);
  REQUIRE(fd.ok());
  timeval limit{5, 0};
  ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  REQUIRE(send_all(fd->get(), text.data(), text.size()));
  ::shutdown(fd->get(), SHUT_WR);
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::recv(fd->get(), buf, sizeof buf, 0)) > 0) got.append(buf, size_t(n));
  return got;
}

}  // namespace sve::test

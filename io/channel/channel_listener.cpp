#include "io/channel/channel_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "hw/port/tcp.hpp"
#include "io/channel/channel_auth.hpp"

namespace sve::channel {

Result<std::unique_ptr<ChannelListener>> ChannelListener::open(
    const std::string& host, std::shared_ptr<const ClusterKey> key, Deliver deliver) {
  auto fd = listen_tcp(HostPortAddress{host, 0});
  if (!fd) return fd.error();
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd.value().get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    return sys_error("data channel listener: getsockname");
  std::unique_ptr<ChannelListener> l(new ChannelListener());
  l->listener_ = std::move(fd.value());
  l->port_ = ntohs(bound.sin_port);
  l->deliver_ = std::move(deliver);
  l->key_ = std::move(key);
  l->thread_ = std::thread([raw = l.get()] { raw->accept_loop(); });
  return l;
}

ChannelListener::~ChannelListener() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ChannelListener::accept_loop() {
  while (!stopping_) {
    if (!wait_acceptable(listener_.get(), 200)) continue;
    int raw = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (raw < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        spdlog::warn("data channel: accept failed: {}; retrying", std::strerror(errno));
        wait_acceptable(-1, 100);  // a pause, not a spin
      }
      continue;
    }
    UniqueFd socket(raw);
    // A caller that does not say who it is within two seconds is dropped.
    timeval limit{2, 0};
    ::setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    FrameHeader hello;
    SessionKeys keys;
    if (std::string why = listen_handshake(raw, key_->get(), Purpose::data_channel, hello, keys);
        !why.empty()) {
      ++refused_;
      spdlog::warn("data channel: a caller refused: {}", why);
      continue;
    }
    timeval none{0, 0};
    ::setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    set_nodelay(raw);
    ++accepted_;
    deliver_(std::move(socket), hello, keys);
  }
}

}  // namespace sve::channel

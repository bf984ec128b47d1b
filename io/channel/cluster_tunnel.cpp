#include "io/channel/cluster_tunnel.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "io/channel/channel_auth.hpp"
#include "io/service_gate.hpp"

namespace sve::channel {
namespace {

constexpr int kHandshakeMs = 2000;
constexpr int kPollMs = 200;  // how soon a thread notices the tunnel stopping

void receive_deadline(int fd, int ms) {
  timeval limit{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
}

uint16_t bound_port(int fd) {
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) return 0;
  return ntohs(bound.sin_port);
}

}  // namespace

Result<std::unique_ptr<ClusterTunnel>> ClusterTunnel::open(const HostPortAddress& cluster,
                                                           uint32_t self,
                                                           std::shared_ptr<const ClusterKey> key) {
  auto fd = listen_tcp(cluster);
  if (!fd) return fd.error();
  std::unique_ptr<ClusterTunnel> t(new ClusterTunnel());
  t->self_ = self;
  random_bytes(&t->instance_, sizeof t->instance_);
  t->key_ = std::move(key);
  t->listener_ = std::move(fd.value());
  t->port_ = bound_port(t->listener_.get());
  t->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!t->wake_.valid()) return sys_error("cluster tunnel: eventfd");
  t->thread_ = std::thread([raw = t.get()] { raw->accept_loop(); });
  return t;
}

ClusterTunnel::~ClusterTunnel() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();  // it joins the workers
}

Result<HostPortAddress> ClusterTunnel::route(const std::string& peer) {
  std::lock_guard lock(mu_);
  if (auto it = routes_.find(peer); it != routes_.end())
    return HostPortAddress{"127.0.0.1", it->second.port};
  auto address = parse_address(peer);
  if (!address) return address.error();
  auto fd = listen_tcp(HostPortAddress{"127.0.0.1", 0});
  if (!fd) return fd.error();
  Route r{*address, std::move(fd.value()), 0};
  r.port = bound_port(r.listener.get());
  if (r.port == 0) return sys_error("cluster tunnel: getsockname");
  uint16_t port = r.port;
  routes_.emplace(peer, std::move(r));
  uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof one);
  return HostPortAddress{"127.0.0.1", port};
}

TunnelStats ClusterTunnel::stats() const {
  return {accepted_.load(), refused_.load(), connected_.load(), failed_.load(), tampered_.load()};
}

void ClusterTunnel::warn(const std::string& line) {
  uint64_t now = monotonic_ms(), last = last_warning_ms_.load();
  if (now - last < 1000 || !last_warning_ms_.compare_exchange_strong(last, now)) return;
  spdlog::warn("cluster link: {}", line);
}

void ClusterTunnel::accept_loop() {
  while (!stopping_) {
    // The listeners: the node's own, then one per route.
    std::vector<pollfd> polled{{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    std::vector<HostPortAddress> peers{{}, {}};
    {
      std::lock_guard lock(mu_);
      for (const auto& [name, r] : routes_) {
        polled.push_back({r.listener.get(), POLLIN, 0});
        peers.push_back(r.peer);
      }
    }
    int n = ::poll(polled.data(), polled.size(), kPollMs);
    if (n > 0 && (polled[1].revents & POLLIN)) {
      uint64_t count;
      (void)::read(wake_.get(), &count, sizeof count);
    }
    for (size_t i = 0; n > 0 && i < polled.size(); ++i) {
      if (i == 1 || !(polled[i].revents & POLLIN)) continue;
      int raw = ::accept4(polled[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (raw < 0) continue;  // (EMFILE and the like: the caller tries again)
      if (i == 0) spawn(&ClusterTunnel::inbound, UniqueFd(raw), {});
      else spawn(&ClusterTunnel::outbound, UniqueFd(raw), peers[i]);
    }
    workers_.remove_if([](Worker& w) {
      if (!w.done->load()) return false;
      w.thread.join();
      return true;
    });
  }
  for (Worker& w : workers_) w.thread.join();  // each sees stopping_ within kPollMs
}

void ClusterTunnel::spawn(void (ClusterTunnel::*work)(UniqueFd, HostPortAddress), UniqueFd fd,
                          HostPortAddress peer) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  int raw = fd.release();
  workers_.push_back(Worker{std::thread([this, work, raw, peer, done] {
                              (this->*work)(UniqueFd(raw), peer);
                              *done = true;
                            }),
                            done});
}

void ClusterTunnel::inbound(UniqueFd caller, HostPortAddress) {
  receive_deadline(caller.get(), kHandshakeMs);
  FrameHeader hello;
  SessionKeys keys;
  std::string why =
      listen_handshake(caller.get(), key_->get(), Purpose::cluster_link, hello, keys);
  if (!why.empty()) {
    ++refused_;
    warn("refused a caller from " + peer_ip(caller.get()) + ": " + why);
    return;
  }
  ++accepted_;
  receive_deadline(caller.get(), 0);
  uint16_t inner = inner_port_.load();
  if (inner == 0) return;  // not listening yet: the caller tries again
  auto middleman = connect_tcp(HostPortAddress{"127.0.0.1", inner}, kHandshakeMs);
  if (!middleman) return;
  set_nodelay(caller.get());
  relay(middleman->get(), caller.get(), keys);
}

void ClusterTunnel::outbound(UniqueFd local, HostPortAddress peer) {
  auto remote = connect_tcp(peer, kHandshakeMs);
  if (!remote) {
    ++failed_;  // (a peer that is down: no warning, the heartbeats tell)
    return;
  }
  receive_deadline(remote->get(), kHandshakeMs);
  SessionKeys keys;
  std::string why = call_handshake(remote->get(), key_->get(), Purpose::cluster_link,
                                   make_hello(self_, 0, 0, instance_), keys);
  if (!why.empty()) {
    ++failed_;
    warn("to " + peer.to_string() + ": " + why);
    return;
  }
  ++connected_;
  receive_deadline(remote->get(), 0);
  // (The relay's writes toward the middleman too: without it, a small
  // message behind one not yet acknowledged waited for the delayed ACK.)
  set_nodelay(local.get());
  relay(local.get(), remote->get(), keys);
}

// Bytes both ways until both ends have finished (or one fails, or the
// tunnel stops): what comes from `plain` (the middleman's side) leaves
// `sealed` (the peer's) in records, and the peer's records arrive opened.
// An end that finishes sending is shut down for writing on the other side,
// so each sees the other's end of stream. A record that fails its check
// ends the link (the middleman sees it cut and connects again).
void ClusterTunnel::relay(int plain, int sealed, const SessionKeys& keys) {
  LinkSealer sealer(keys.send);
  LinkOpener opener(keys.receive);
  std::vector<char> buffer(kMaxRecordPlain);
  std::string out;
  bool open[2] = {true, true};  // plain -> sealed, sealed -> plain
  int from[2] = {plain, sealed}, to[2] = {sealed, plain};
  while (!stopping_ && (open[0] || open[1])) {
    pollfd p[2] = {{plain, static_cast<short>(open[0] ? POLLIN : 0), 0},
                   {sealed, static_cast<short>(open[1] ? POLLIN : 0), 0}};
    int n = ::poll(p, 2, kPollMs);
    if (n < 0 && errno != EINTR) return;
    for (int d = 0; d < 2 && n > 0; ++d) {
      if (!open[d] || !(p[d].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::recv(from[d], buffer.data(), buffer.size(), 0);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got < 0) return;  // reset: both go
      if (got == 0) {
        open[d] = false;
        ::shutdown(to[d], SHUT_WR);
        continue;
      }
      out.clear();
      if (d == 0) {
        sealer.seal(buffer.data(), static_cast<size_t>(got), out);
      } else if (!opener.feed(buffer.data(), static_cast<size_t>(got), out)) {
        ++tampered_;
        warn("from " + peer_ip(sealed) + ": " + opener.error() + "; the link is cut");
        return;
      }
      if (!out.empty() && !send_all(to[d], out.data(), out.size())) return;
    }
  }
}

Result<HostPortAddress> link_target(ClusterTunnel* tunnel, const std::string& address) {
  if (tunnel) return tunnel->route(address);
  return parse_address(address);
}

}  // namespace sve::channel

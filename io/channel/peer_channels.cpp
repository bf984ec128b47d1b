#include "io/channel/peer_channels.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "hw/port/tcp.hpp"
#include "io/service_gate.hpp"

namespace sve::channel {
namespace {

constexpr uint64_t kReconnectMs = 1000;  // after a failed connect or a cut

}  // namespace

// A peer node, seen from this core: its data port and this core's
// connection to it. Answers to what this core sent come back here.
struct PeerChannels::Peer final : ChannelHandler {
  PeerChannels* channels = nullptr;
  uint32_t node = 0;
  std::string host;
  uint16_t port = 0;
  bool connecting = false;
  UniqueFd connecting_fd;
  sockaddr_in addr{};
  ConnectOp op;
  std::unique_ptr<DataChannel> channel;
  uint64_t retry_at_ms = 0;
  // The handshake: the hello this end sent and its nonce; proven once the
  // listener proved the key and this end answered with its own proof.
  FrameHeader hello;
  Nonce nonce{};
  bool proven = false;

  bool on_challenge(const FrameHeader&, const uint8_t* body) override {
    if (!channels->setup_.key) return false;
    ClusterKeyBytes key = channels->setup_.key->get();
    Nonce theirs;
    std::memcpy(theirs.bytes, body, kNonceBytes);
    if (!peer_mac_matches(listener_proof(key, Purpose::data_channel, hello, nonce, theirs),
                          body + kNonceBytes)) {
      ++channels->stats_.unproven;
      spdlog::warn("data channel to node {}: it does not hold this cluster's key", node);
      return false;
    }
    proven = channel->send_proof(caller_proof(key, Purpose::data_channel, hello, nonce, theirs));
    if (proven)
      channel->seal(session_keys(key, Purpose::data_channel, hello, nonce, theirs, true));
    return proven;
  }
  void on_mirror_answer(uint64_t id, int32_t status) override {
    if (channels->mirror_) channels->mirror_->on_mirror_answer(id, status);
  }
  void on_forward_answer(const ForwardAnswerIn& in) override {
    if (channels->forward_) channels->forward_->on_forward_answer(in);
  }
  uint64_t receive_hold_ms() override { return channels->stall_ms(node); }
  uint64_t send_delay_ms() override { return channels->delay_ms(node); }
  void on_closed(const std::string& reason) override {
    spdlog::info("data channel to node {} (core {}) closed: {}", node, channels->setup_.core,
                 reason);
    ++channels->stats_.disconnects;
    channels->stats_.tampered += channel->stats().tampered;
    retry_at_ms = monotonic_ms() + kReconnectMs;
    proven = false;
    channels->closed_.push_back(std::move(channel));
  }
};

// A peer's core connected to this one: its copies and forwarded requests,
// for this core.
struct PeerChannels::Inbound final : ChannelHandler {
  PeerChannels* channels = nullptr;
  uint32_t node = 0;
  uint64_t serial = 0;
  std::unique_ptr<DataChannel> channel;
  bool done = false;

  // Cut at this end: what the caller sent and this end had not read yet is
  // lost with the connection, unanswered (the caller sends it again).
  bool cut_now() {
    if (!channels->cut(node)) return false;
    channel->close("cut by the chaos monkey");
    return true;
  }
  int32_t on_mirror(const MirrorIn& in) override {
    if (cut_now()) return ECONNRESET;
    if (!channels->mirror_) return EOPNOTSUPP;
    return channels->mirror_->on_mirror(node, in);
  }
  // The owner's copy of a write this core forwarded to it: kept from the
  // write's own data, which is here already (the owner sent only the
  // numbers). Not held (ENOENT, EINVAL): the owner sends the data instead.
  int32_t on_mirror_ref(const MirrorRefIn& in) override {
    if (cut_now()) return ECONNRESET;
    if (!channels->mirror_ || !channels->forward_) return EOPNOTSUPP;
    const FrameHeader& h = *in.header;
    for (uint32_t i = 1; i < h.count; ++i)
      if (in.blocks[i] != in.blocks[0] + i) return EINVAL;
    if (in.blocks[0] > UINT64_MAX / kBlockBytes - h.count) return EINVAL;
    const char* data = channels->forward_->forwarded_data(
        in.forward_id, h.vdisk, in.blocks[0] * kBlockBytes, uint64_t{h.count} * kBlockBytes);
    if (!data) return ENOENT;
    int32_t status = channels->mirror_->on_mirror(node, MirrorIn{&h, in.blocks, in.seqs, data});
    if (status == 0) channels->forward_->copy_held(in.forward_id);
    return status;
  }
  void on_release(const ReleaseIn& in) override {
    if (channels->mirror_) channels->mirror_->on_release(node, in);
  }
  void on_forward(const ForwardIn& in) override {
    if (cut_now()) return;
    if (!channels->forward_) {
      channel->send_forward_answer(in.header->id, EOPNOTSUPP, nullptr, 0);
      return;
    }
    channels->forward_->on_forward(ReplyTo{serial}, node, in);
  }
  uint64_t receive_hold_ms() override { return channels->stall_ms(node); }
  uint64_t send_delay_ms() override { return channels->delay_ms(node); }
  void on_closed(const std::string& reason) override {
    spdlog::info("data channel from node {} (core {}) closed: {}", node, channels->setup_.core,
                 reason);
    channels->stats_.tampered += channel->stats().tampered;
    done = true;
  }
};

PeerChannels::PeerChannels(PeerChannelsSetup setup) : setup_(setup) {}

// The node stops with its reactors still running: a connection whose ring
// operations have not completed (close_all() ran, but not long enough ago)
// is left allocated rather than freed under them; the process is ending.
PeerChannels::~PeerChannels() {
  for (auto& [node, peer] : peers_) {
    if (peer->connecting) (void)peer.release();
    else if (peer->channel && !peer->channel->closed()) (void)peer->channel.release();
  }
  for (auto& in : inbound_)
    if (in->channel && !in->channel->closed()) (void)in.release();
  for (auto& c : closed_)
    if (c && !c->closed()) (void)c.release();
}

PeerChannels::Peer& PeerChannels::peer(uint32_t node) {
  auto& slot = peers_[node];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->channels = this;
    slot->node = node;
    slot->op.channels = this;
    slot->op.node = node;
  }
  return *slot;
}

void PeerChannels::set_peer(uint32_t node, const std::string& host, uint16_t port) {
  Peer& p = peer(node);
  if (p.host == host && p.port == port) return;
  p.host = host;
  p.port = port;
  p.retry_at_ms = 0;
  if (p.channel) p.channel->close("the peer's data port changed");
  maybe_connect(node);
}

void PeerChannels::maybe_connect(uint32_t node) {
  auto it = peers_.find(node);
  if (it == peers_.end()) return;
  Peer& p = *it->second;
  if (p.connecting || p.channel || p.port == 0 || monotonic_ms() < p.retry_at_ms) return;
  if (cut(node)) return;
  p.addr = {};
  p.addr.sin_family = AF_INET;
  p.addr.sin_port = htons(p.port);
  if (::inet_pton(AF_INET, p.host.c_str(), &p.addr.sin_addr) != 1) {
    p.retry_at_ms = UINT64_MAX;  // not an IPv4 address: the fallback it is
    spdlog::warn("data channel: node {} listens on {}, not an IPv4 address", node, p.host);
    return;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    p.retry_at_ms = monotonic_ms() + kReconnectMs;
    return;
  }
  p.connecting_fd = UniqueFd(fd);
  p.connecting = true;
  io_uring_sqe* sqe = setup_.ring->sqe_for(&p.op);
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&p.addr), sizeof p.addr);
}

void PeerChannels::connected(uint32_t node, int res) {
  Peer& p = *peers_.at(node);
  p.connecting = false;
  UniqueFd fd = std::move(p.connecting_fd);
  if (res < 0) {
    ++stats_.connect_failures;
    p.retry_at_ms = monotonic_ms() + kReconnectMs;
    return;
  }
  ++stats_.connects;
  set_nodelay(fd.get());
  p.channel = std::make_unique<DataChannel>(*setup_.ring, std::move(fd), p,
                                            ChannelLimits{setup_.window_bytes, false});
  // Nothing but the handshake goes out until the listener proved the key.
  p.proven = false;
  p.hello = make_hello(setup_.self, setup_.core, setup_.cores, setup_.instance);
  p.nonce = fresh_nonce();
  p.channel->send_hello(p.hello, p.nonce);
  p.channel->start();
  spdlog::info("data channel to node {} (core {}) connected", node, setup_.core);
}

DataChannel* PeerChannels::up(uint32_t node) {
  bury_closed();
  auto it = peers_.find(node);
  if (it == peers_.end()) return nullptr;
  Peer* p = it->second.get();
  if (cut(node)) {
    if (p->channel && !p->channel->closing()) p->channel->close("cut by the chaos monkey");
    return nullptr;
  }
  if (p->channel && !p->channel->closing()) return p->proven ? p->channel.get() : nullptr;
  maybe_connect(node);
  return nullptr;
}

bool PeerChannels::answer_forward(ReplyTo reply, uint64_t id, int32_t status,
                                  IoRequestPtr request, uint64_t bytes) {
  for (auto& in : inbound_)
    if (in->serial == reply.connection)
      return !in->channel->closing() &&
             in->channel->send_forward_answer(id, status, std::move(request), bytes);
  return false;
}

bool PeerChannels::cut(uint32_t node) const {
  return setup_.faults && setup_.faults->channel_cut(node, monotonic_ms());
}

uint64_t PeerChannels::delay_ms(uint32_t node) const {
  return setup_.faults ? setup_.faults->channel_delay_ms(node, monotonic_ms()) : 0;
}

uint64_t PeerChannels::stall_ms(uint32_t node) const {
  return setup_.faults ? setup_.faults->channel_stall_ms(node, monotonic_ms()) : 0;
}

void PeerChannels::bury_closed() {
  std::erase_if(closed_, [](const auto& c) { return !c || c->closed(); });
  std::erase_if(inbound_, [](const auto& in) { return in->done && in->channel->closed(); });
}

void PeerChannels::accept(UniqueFd socket, const FrameHeader& hello, const SessionKeys& keys) {
  bury_closed();
  auto in = std::make_unique<Inbound>();
  in->channels = this;
  in->node = hello.origin;
  in->serial = next_connection_++;
  in->channel = std::make_unique<DataChannel>(*setup_.ring, std::move(socket), *in,
                                              ChannelLimits{setup_.window_bytes, false});
  if (hello.count != setup_.cores || hello.core != setup_.core) {
    // Another partition layout: that peer keeps the interconnect's path.
    ++stats_.refused;
    spdlog::warn("data channel from node {} refused: it runs {} cores (core {}), this node {}",
                 hello.origin, hello.count, hello.core, setup_.cores);
    in->channel->close("core counts differ");
  } else {
    in->channel->seal(keys);
    in->channel->start();
  }
  inbound_.push_back(std::move(in));
}

void PeerChannels::adopt(uint32_t node, UniqueFd socket, const SessionKeys& keys) {
  Peer& p = peer(node);
  if (p.channel || p.connecting) return;
  p.retry_at_ms = UINT64_MAX;
  p.channel = std::make_unique<DataChannel>(*setup_.ring, std::move(socket), p,
                                            ChannelLimits{setup_.window_bytes, false});
  p.proven = true;  // both ends are this process
  p.channel->seal(keys);
  p.channel->start();
}

void PeerChannels::close_all() {
  for (auto& [node, peer] : peers_) {
    peer->retry_at_ms = UINT64_MAX;
    if (peer->channel) peer->channel->close("the node is stopping");
    if (peer->connecting) ::shutdown(peer->connecting_fd.get(), SHUT_RDWR);
  }
  for (auto& in : inbound_) in->channel->close("the node is stopping");
}

nlohmann::json PeerChannels::inspect() const {
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [node, p] : peers_) {
    nlohmann::json row{{"node", node}, {"port", p->port},
                       {"up", p->channel && !p->channel->closing() && p->proven}};
    if (p->channel) {
      row["sealed"] = p->channel->sealed();
      const auto& s = p->channel->stats();
      row["frames_sent"] = s.frames_sent;
      row["sends"] = s.sends;
      row["window_used"] = p->channel->window_used();
      row["window_waits"] = s.window_waits;
    }
    peers.push_back(std::move(row));
  }
  return {{"connects", stats_.connects}, {"connect_failures", stats_.connect_failures},
          {"disconnects", stats_.disconnects}, {"refused", stats_.refused},
          {"unproven", stats_.unproven}, {"tampered", stats_.tampered},
          {"inbound", inbound_.size()}, {"peers", peers}};
}

}  // namespace sve::channel

#include "cache/channel_link.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "hw/port/tcp.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

constexpr uint64_t kReconnectMs = 1000;  // after a failed connect or a cut

}  // namespace

// A partner node, seen from this core: its data port and this core's
// connection to it.
struct ChannelMirrorLink::Peer final : channel::ChannelHandler {
  ChannelMirrorLink* link = nullptr;
  uint32_t node = 0;
  std::string host;
  uint16_t port = 0;
  bool connecting = false;
  UniqueFd connecting_fd;
  sockaddr_in addr{};
  ConnectOp op;
  std::unique_ptr<channel::DataChannel> channel;
  uint64_t retry_at_ms = 0;

  void on_mirror_answer(uint64_t id, int32_t status) override {
    if (link->cache_) link->cache_->mirror_done(id, status == 0);
  }
  void on_closed(const std::string& reason) override {
    spdlog::info("data channel to node {} (core {}) closed: {}", node, link->setup_.core, reason);
    ++link->stats_.disconnects;
    retry_at_ms = monotonic_ms() + kReconnectMs;
    link->closed_.push_back(std::move(channel));
  }
};

// A partner's core connected to this one: its copies, into this partition.
struct ChannelMirrorLink::Inbound final : channel::ChannelHandler {
  ChannelMirrorLink* link = nullptr;
  uint32_t node = 0;
  std::unique_ptr<channel::DataChannel> channel;
  bool done = false;

  int32_t on_mirror(const channel::MirrorIn& in) override {
    CacheFacility* cache = link->cache_;
    const channel::FrameHeader& h = *in.header;
    // Only the partition of this core; only while this node may take copies
    // (as the interconnect's path checks).
    if (link->cut(node)) {
      // Cut at this end: what the caller sent and this end had not read yet
      // is lost with the connection, unanswered (the caller sends it again).
      channel->close("cut by the chaos monkey");
      return ECONNRESET;
    }
    if (!cache || h.vdisk % link->setup_.cores != link->setup_.core) return EXDEV;
    if (!cache->takes_copies()) return ESTALE;
    ++link->stats_.copies_received;
    return cache->store_mirror(
        MirrorCopies{h.origin, h.vdisk, h.epoch, h.count, in.blocks, in.seqs, in.data});
  }
  void on_release(const channel::ReleaseIn& in) override {
    CacheFacility* cache = link->cache_;
    const channel::FrameHeader& h = *in.header;
    if (!cache || h.vdisk % link->setup_.cores != link->setup_.core) return;
    cache->release_mirror(h.origin, h.vdisk, std::vector<uint64_t>(in.blocks, in.blocks + h.count),
                          std::vector<uint64_t>(in.seqs, in.seqs + h.count));
  }
  void on_closed(const std::string& reason) override {
    spdlog::info("data channel from node {} (core {}) closed: {}", node, link->setup_.core,
                 reason);
    done = true;
  }
};

ChannelMirrorLink::ChannelMirrorLink(ChannelLinkSetup setup, MirrorLink* fallback)
    : setup_(setup), fallback_(fallback) {}

// The node stops with its reactors still running: a connection whose ring
// operations have not completed (close_all() ran, but not long enough ago)
// is left allocated rather than freed under them; the process is ending.
ChannelMirrorLink::~ChannelMirrorLink() {
  for (auto& [node, peer] : peers_) {
    if (peer->connecting) (void)peer.release();
    else if (peer->channel && !peer->channel->closed()) (void)peer->channel.release();
  }
  for (auto& in : inbound_)
    if (in->channel && !in->channel->closed()) (void)in.release();
  for (auto& c : closed_)
    if (c && !c->closed()) (void)c.release();
}

void ChannelMirrorLink::set_peer(uint32_t node, const std::string& host, uint16_t port) {
  auto& slot = peers_[node];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->link = this;
    slot->node = node;
    slot->op.link = this;
    slot->op.node = node;
  }
  Peer& p = *slot;
  if (p.host == host && p.port == port) return;
  p.host = host;
  p.port = port;
  p.retry_at_ms = 0;
  if (p.channel) p.channel->close("the partner's data port changed");
  maybe_connect(node);
}

void ChannelMirrorLink::maybe_connect(uint32_t node) {
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

void ChannelMirrorLink::connected(uint32_t node, int res) {
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
  p.channel = std::make_unique<channel::DataChannel>(
      *setup_.ring, std::move(fd), p, channel::ChannelLimits{setup_.window_bytes, false});
  p.channel->send_hello(setup_.self, setup_.core, setup_.cores, setup_.instance);
  p.channel->start();
  spdlog::info("data channel to node {} (core {}) connected", node, setup_.core);
}

ChannelMirrorLink::Peer* ChannelMirrorLink::up(uint32_t partner) {
  bury_closed();
  auto it = peers_.find(partner);
  if (it == peers_.end()) return nullptr;
  Peer* p = it->second.get();
  if (cut(partner)) {
    if (p->channel && !p->channel->closing()) p->channel->close("cut by the chaos monkey");
    return nullptr;
  }
  if (p->channel && !p->channel->closing()) return p;
  maybe_connect(partner);
  return nullptr;
}

bool ChannelMirrorLink::cut(uint32_t node) const {
  return setup_.faults && setup_.faults->channel_cut(node, monotonic_ms());
}

void ChannelMirrorLink::bury_closed() {
  std::erase_if(closed_, [](const auto& c) { return !c || c->closed(); });
  std::erase_if(inbound_, [](const auto& in) { return in->done && in->channel->closed(); });
}

void ChannelMirrorLink::mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  ++stats_.copies_fallback;
  fallback_->mirror(partner, batch, id);
}

void ChannelMirrorLink::mirror_shared(uint32_t partner, std::shared_ptr<const MirrorBatch> batch,
                                      uint64_t id) {
  Peer* p = up(partner);
  size_t n = batch->blocks.size();
  if (p && n > 0 && n <= channel::kMaxBlocks && batch->seqs.size() == n &&
      batch->data.size() == n * channel::kBlockBytes) {
    channel::OutMirror out;
    out.origin = batch->origin;
    out.vdisk = batch->vdisk;
    out.epoch = batch->epoch;
    out.id = id;
    out.count = static_cast<uint32_t>(n);
    out.blocks = batch->blocks.data();
    out.seqs = batch->seqs.data();
    out.data = batch->data.data();
    out.keep = batch;
    if (p->channel->send_mirror(std::move(out))) {
      ++stats_.copies_sent;
      return;
    }
  }
  mirror(partner, *batch, id);
}

void ChannelMirrorLink::release(uint32_t partner, uint32_t vdisk,
                                const std::vector<uint64_t>& blocks,
                                const std::vector<uint64_t>& seqs) {
  Peer* p = up(partner);
  if (p && blocks.size() <= channel::kMaxBlocks &&
      p->channel->send_release(setup_.self, vdisk, blocks, seqs))
    return;
  fallback_->release(partner, vdisk, blocks, seqs);
}

void ChannelMirrorLink::accept(UniqueFd socket, const channel::FrameHeader& hello) {
  bury_closed();
  auto in = std::make_unique<Inbound>();
  in->link = this;
  in->node = hello.origin;
  in->channel = std::make_unique<channel::DataChannel>(
      *setup_.ring, std::move(socket), *in, channel::ChannelLimits{setup_.window_bytes, false});
  if (hello.count != setup_.cores || hello.core != setup_.core) {
    // Another partition layout: that partner keeps the interconnect's path.
    ++stats_.refused;
    spdlog::warn("data channel from node {} refused: it runs {} cores (core {}), this node {}",
                 hello.origin, hello.count, hello.core, setup_.cores);
    in->channel->close("core counts differ");
  } else {
    in->channel->start();
  }
  inbound_.push_back(std::move(in));
}

void ChannelMirrorLink::close_all() {
  for (auto& [node, peer] : peers_) {
    peer->retry_at_ms = UINT64_MAX;
    if (peer->channel) peer->channel->close("the node is stopping");
    if (peer->connecting) ::shutdown(peer->connecting_fd.get(), SHUT_RDWR);
  }
  for (auto& in : inbound_) in->channel->close("the node is stopping");
}

nlohmann::json ChannelMirrorLink::inspect() const {
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [node, p] : peers_) {
    nlohmann::json row{{"node", node}, {"port", p->port}, {"up", p->channel && !p->channel->closing()}};
    if (p->channel) {
      const auto& s = p->channel->stats();
      row["frames_sent"] = s.frames_sent;
      row["sends"] = s.sends;
      row["window_used"] = p->channel->window_used();
      row["window_waits"] = s.window_waits;
    }
    peers.push_back(std::move(row));
  }
  return {{"copies_sent", stats_.copies_sent}, {"copies_fallback", stats_.copies_fallback},
          {"copies_received", stats_.copies_received}, {"connects", stats_.connects},
          {"connect_failures", stats_.connect_failures}, {"disconnects", stats_.disconnects},
          {"refused", stats_.refused}, {"inbound", inbound_.size()}, {"peers", peers}};
}

}  // namespace sve

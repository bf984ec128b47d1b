#pragma once
// The mirrored cache's copies over the node-to-node data channel
// (io/channel/) instead of the interconnect actor: one connection from
// each core to the same core of each partner, on the core's own ring.
//
// Outbound (ChannelMirrorLink, the cache partition's MirrorLink): a copy
// goes on the partner's channel, sent from the batch itself; its answer
// comes back on the same connection to mirror_done(). Until the channel is
// up (the partner's data port not known yet, connecting, refused, or cut
// and not yet reconnected) copies and releases take the fallback link (the
// interconnect actor), so nothing waits on the channel. A cut connection
// fails its unanswered copies; the cache sends them again on its next
// tick, by whichever path is up then.
//
// Inbound: a partner's core connects to this core (the listener hands the
// socket over with its hello); its copies go from the receive buffer into
// this partition's NVRAM (one copy), answered on the same connection.
// Both nodes must run the same number of cores, so that a vdisk's
// partition has the same core on both: a hello from a node with another
// count is refused, and that partner keeps the fallback path.
//
// Everything here runs on the core's thread. No CAF.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "cache/cache_facility.hpp"
#include "io/channel/data_channel.hpp"
#include "faults/net_faults.hpp"
#include "io/uring/uring_engine.hpp"

namespace sve {

struct ChannelLinkSetup {
  UringEngine* ring = nullptr;
  uint32_t self = 0;      // this node
  uint32_t core = 0;      // this core
  uint32_t cores = 1;     // this node's cores
  uint64_t instance = 0;  // this process (tells a restarted caller apart)
  uint64_t window_bytes = 16ull << 20;
  NetFaults* faults = nullptr;  // the chaos monkey's cuts, if any
};

struct ChannelLinkStats {
  uint64_t copies_sent = 0;       // batches sent on the channel
  uint64_t copies_fallback = 0;   // batches that took the fallback link
  uint64_t copies_received = 0;   // partner batches stored from the channel
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t disconnects = 0;
  uint64_t refused = 0;           // accepted connections refused (core counts differ)
};

class ChannelMirrorLink final : public MirrorLink {
 public:
  ChannelMirrorLink(ChannelLinkSetup setup, MirrorLink* fallback);
  ~ChannelMirrorLink() override;

  void bind(CacheFacility* cache) { cache_ = cache; }

  // Where a partner's data channel listens, once the interconnect learnt it.
  void set_peer(uint32_t node, const std::string& host, uint16_t port);
  // A partner's core connected to this core (its hello already checked).
  void accept(UniqueFd socket, const channel::FrameHeader& hello);
  // Closes every connection (the node is stopping).
  void close_all();

  void mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) override;
  void mirror_shared(uint32_t partner, std::shared_ptr<const MirrorBatch> batch,
                     uint64_t id) override;
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override;
  nlohmann::json inspect() const override;
  const ChannelLinkStats& stats() const { return stats_; }

 private:
  struct Peer;
  struct Inbound;
  struct ConnectOp final : RingHandler {
    ChannelMirrorLink* link = nullptr;
    uint32_t node = 0;
    void on_ring_complete(int res) override { link->connected(node, res); }
  };

  Peer* up(uint32_t partner);
  void maybe_connect(uint32_t node);
  void connected(uint32_t node, int res);
  void bury_closed();
  bool cut(uint32_t node) const;

  ChannelLinkSetup setup_;
  MirrorLink* fallback_;
  CacheFacility* cache_ = nullptr;
  std::map<uint32_t, std::unique_ptr<Peer>> peers_;
  std::vector<std::unique_ptr<Inbound>> inbound_;
  // Closed channels wait here to be destroyed outside their own callbacks.
  std::vector<std::unique_ptr<channel::DataChannel>> closed_;
  ChannelLinkStats stats_;
};

}  // namespace sve

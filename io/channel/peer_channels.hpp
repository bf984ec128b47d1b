#pragma once
// One core's connections of the node-to-node data channel
// (data_channel.hpp): one to the same core of each peer node it exchanges
// host data with, made from here on the core's own ring, and those the
// peers' cores made to this one (the listener hands each over with its
// hello). What arrives is handed by kind to whoever serves it on this core:
// copies and releases to the mirrored cache (MirrorEndpoint), forwarded
// requests and their answers to the forwarder (ForwardEndpoint); neither
// knows the other.
//
// A connection that fails or is cut is made again after a second. Until a
// peer's is up (its data port not known yet, connecting, refused, cut),
// up() says so and the caller takes its fallback path (the interconnect
// actor), so nothing waits on the channel. Both nodes must run the same
// number of cores, so that a vdisk's partition is the same core on both: a
// hello from a node with another count is refused, and that peer keeps the
// fallback path.
//
// Everything here runs on the core's thread. No CAF.
#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faults/net_faults.hpp"
#include "io/channel/data_channel.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/fd.hpp"

namespace sve::channel {

// The mirrored cache's side (cache/channel_link.hpp).
class MirrorEndpoint {
 public:
  virtual ~MirrorEndpoint() = default;
  virtual int32_t on_mirror(uint32_t from, const MirrorIn& in) = 0;
  virtual void on_release(uint32_t from, const ReleaseIn& in) = 0;
  virtual void on_mirror_answer(uint64_t id, int32_t status) = 0;
};

// Which inbound connection a forwarded request came on, for its answer.
struct ReplyTo {
  uint64_t connection = 0;
};

// The forwarder's side (io/interconnect/channel_forwarder.hpp).
class ForwardEndpoint {
 public:
  virtual ~ForwardEndpoint() = default;
  virtual void on_forward(ReplyTo reply, uint32_t from, const ForwardIn& in) = 0;
  virtual void on_forward_answer(const ForwardAnswerIn& in) = 0;
  // A write this end forwarded (its id) and not yet answered: its `bytes`
  // at vdisk offset `offset`, in one piece, for the copy its owner asks
  // this node (the owner's partner) to keep from them; null if there is no
  // such write here or its bytes lie in pieces.
  virtual const char* forwarded_data(uint64_t id, uint32_t vdisk, uint64_t offset,
                                     uint64_t bytes) = 0;
  // That copy is held here now, so the write is in both nodes' non-volatile
  // memory: acknowledged at once (its answer, when it comes, is ignored).
  virtual void copy_held(uint64_t id) = 0;
};

struct PeerChannelsSetup {
  UringEngine* ring = nullptr;
  uint32_t self = 0;      // this node
  uint32_t core = 0;      // this core
  uint32_t cores = 1;     // this node's cores
  uint64_t instance = 0;  // this process (tells a restarted caller apart)
  uint64_t window_bytes = 16ull << 20;
  NetFaults* faults = nullptr;  // the chaos monkey's cuts, if any
  // The cluster key this core proves, and checks the listener's proof by
  // (channel_auth.hpp). Only adopt() goes without.
  std::shared_ptr<const ClusterKey> key;
};

struct PeerChannelsStats {
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t disconnects = 0;
  uint64_t refused = 0;  // accepted connections refused (core counts differ)
  uint64_t unproven = 0;  // listeners that did not prove the cluster key
  uint64_t tampered = 0;  // connections ended by a frame whose tag failed
};

class PeerChannels {
 public:
  explicit PeerChannels(PeerChannelsSetup setup);
  ~PeerChannels();
  PeerChannels(const PeerChannels&) = delete;
  PeerChannels& operator=(const PeerChannels&) = delete;

  void bind(MirrorEndpoint* mirror) { mirror_ = mirror; }
  void bind(ForwardEndpoint* forward) { forward_ = forward; }
  const PeerChannelsSetup& setup() const { return setup_; }

  // Where a peer's data channel listens, once the interconnect learnt it.
  void set_peer(uint32_t node, const std::string& host, uint16_t port);
  // A peer's core connected to this core (its hello already checked, the
  // handshake done): sealed with the connection's `keys`.
  void accept(UniqueFd socket, const FrameHeader& hello, const SessionKeys& keys);
  // This core's connection to `node` over a socket connected elsewhere,
  // whose hello is taken as said, sealed with `keys` (sve-bench's
  // in-process pair; never reconnected).
  void adopt(uint32_t node, UniqueFd socket, const SessionKeys& keys);
  // Closes every connection (the node is stopping).
  void close_all();

  // This core's connection to `node` if it is up (else null, and a
  // connection is begun if there is none).
  DataChannel* up(uint32_t node);
  // The answer to a forwarded request, on the connection it came on;
  // false if that connection has ended meanwhile.
  bool answer_forward(ReplyTo reply, uint64_t id, int32_t status, IoRequestPtr request,
                      uint64_t bytes);
  // Whether the chaos monkey cuts the channel to `node` now; how long it
  // still stalls this end's reading from it; how late frames to it leave.
  bool cut(uint32_t node) const;
  uint64_t stall_ms(uint32_t node) const;
  uint64_t delay_ms(uint32_t node) const;

  nlohmann::json inspect() const;
  const PeerChannelsStats& stats() const { return stats_; }

 private:
  struct Peer;
  struct Inbound;
  struct ConnectOp final : RingHandler {
    PeerChannels* channels = nullptr;
    uint32_t node = 0;
    void on_ring_complete(int res) override { channels->connected(node, res); }
  };

  Peer& peer(uint32_t node);
  void maybe_connect(uint32_t node);
  void connected(uint32_t node, int res);
  void bury_closed();

  PeerChannelsSetup setup_;
  MirrorEndpoint* mirror_ = nullptr;
  ForwardEndpoint* forward_ = nullptr;
  std::map<uint32_t, std::unique_ptr<Peer>> peers_;
  std::vector<std::unique_ptr<Inbound>> inbound_;
  uint64_t next_connection_ = 1;
  // Closed channels wait here to be destroyed outside their own callbacks.
  std::vector<std::unique_ptr<DataChannel>> closed_;
  PeerChannelsStats stats_;
};

}  // namespace sve::channel

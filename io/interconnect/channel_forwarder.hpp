#pragma once
// Host requests for a vdisk another node owns, carried on the core's data
// channel to that node (io/channel/peer_channels.hpp) rather than through
// the interconnect actor: no mailbox, no serialisation, and the write's
// data sent from the buffer it arrived in.
//
// Outbound (submit, from the forward facility): the request goes to the
// owner by this core's route table, on this core's connection to the same
// core there (a vdisk's partition is the same core on both nodes). A
// request the channel cannot carry now (no connection, a vdisk of another
// core, a route in motion) completes at once with kNotSent; so does one the
// owner did not run (it no longer owns the vdisk, or has no room now), and
// one whose connection ended before its answer came. The forward facility
// then hands it to the interconnect actor, which waits for the route table
// and retries: that path stays the one authority on where a request goes
// when ownership moves. (A request cut off with its connection may have
// run on the owner; it runs again, with the same data, before it is
// acknowledged. The owner runs a partition's requests in the order they
// arrive, and the host sends nothing that overlaps an unacknowledged write.)
//
// Inbound (on_forward, from a peer's connection): run on this core's stack
// below the forward facility, only while this node serves and owns the
// vdisk by its own table, with a request context and buffer from the
// core's pools (charged to a "forwarded" account, so a busy peer cannot
// take what the host connections need); the answer goes back on the same
// connection. A read's data is sent from the buffer the back end filled.
//
// Per request, nothing comes from the heap once the tables (here and the
// channel's) have grown to the peak of requests in flight. Everything runs
// on the core's thread.
#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/channel/peer_channels.hpp"
#include "io/pool/pool_account.hpp"
#include "io/protocol.hpp"
#include "io/reactor/core_io.hpp"
#include "io/service_gate.hpp"
#include "model/ownership.hpp"

namespace sve {

struct ChannelForwarderStats {
  uint64_t sent = 0;          // requests forwarded on the channel
  uint64_t not_sent = 0;      // left to the interconnect actor
  uint64_t served = 0;        // peers' requests run here
  uint64_t refused = 0;       // peers' requests not run (not the owner, no room)
  uint64_t bytes_copied = 0;  // payload copied between channel and request buffers
  uint64_t held_early = 0;    // writes acknowledged when the owner's copy was kept here
};

class ChannelForwarder final : public IoServer, public IoClient, public channel::ForwardEndpoint {
 public:
  // The status of a request this path did not get run: take another.
  static constexpr int32_t kNotSent = 107;  // ENOTCONN

  // `below`: this core's stack under the forward facility.
  ChannelForwarder(channel::PeerChannels& channels, IoServer& below, CoreIo& io,
                   const ServiceGate* gate);
  ~ChannelForwarder() override;

  void set_routes(std::shared_ptr<const RouteTable> routes) { routes_ = std::move(routes); }
  // Peers' requests still running here.
  size_t serving() const { return inbound_.size() - free_inbound_.size(); }

  void submit(IoRequestPtr request) override;
  void io_done(IoRequestPtr request) override;
  void on_forward(channel::ReplyTo reply, uint32_t from, const channel::ForwardIn& in) override;
  void on_forward_answer(const channel::ForwardAnswerIn& in) override;
  const char* forwarded_data(uint64_t id, uint32_t vdisk, uint64_t offset,
                             uint64_t bytes) override;
  void copy_held(uint64_t id) override;

  nlohmann::json inspect() const;
  const ChannelForwarderStats& stats() const { return stats_; }

 private:
  struct Outbound {
    IoRequestPtr request;
    uint64_t id = 0;
  };
  struct Inbound {
    channel::ReplyTo reply;
    uint64_t id = 0;  // the peer's
  };

  bool runs_here(uint32_t vdisk) const;
  Outbound* waiting(uint64_t id);
  void refuse(channel::ReplyTo reply, uint64_t id, int32_t status);

  channel::PeerChannels& channels_;
  IoServer& below_;
  CoreIo& io_;
  const ServiceGate* gate_;
  PoolAccount requests_account_;
  PoolAccount pages_account_;
  std::shared_ptr<const RouteTable> routes_;
  std::vector<Outbound> outbound_;
  std::vector<uint32_t> free_outbound_;
  uint64_t next_serial_ = 1;
  std::vector<Inbound> inbound_;
  std::vector<uint32_t> free_inbound_;
  ChannelForwarderStats stats_;
};

}  // namespace sve

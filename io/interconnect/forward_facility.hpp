#pragma once
// The top of a node's facility stack in a cluster: sends each request to
// the node that owns its vdisk (model/ownership.hpp). A request for a vdisk
// this node owns goes on down the local stack; one for a vdisk another node
// owns goes on the core's data channel to that node (channel_forwarder.hpp)
// when it can, and otherwise to the interconnect, which carries it to that
// node and brings its completion back through `return_port` (a message to
// this core), so the completion reaches the front end on its own core. A
// vdisk whose I/O group is offline fails with EIO.
//
// While the node is between generations (its lease gate closed, or its
// route table not serving: a node joined or left and the cluster forms the
// next generation, which takes a lease or more when a node died), requests
// wait here, in order, for up to `hold_ms`, and go on once the node serves
// again: hosts see a pause, not errors, as a member comes or goes. One
// that waits longer (the node has lost its cluster) fails with EIO.
// Nothing held has been executed, so none lands on a back end this node
// may no longer own.
//
// Free of the actor runtime; not thread-safe (one core's thread runs submit
// and io_done).
#include <cstdint>
#include <deque>
#include <memory>

#include "facility/facility.hpp"
#include "io/interconnect/channel_forwarder.hpp"
#include "io/protocol.hpp"
#include "io/service_gate.hpp"
#include "model/ownership.hpp"

namespace sve {

struct ForwardStats {
  uint64_t local = 0;
  uint64_t forwarded = 0;
  uint64_t on_channel = 0;  // of those, answered on the data channel
  uint64_t refused = 0;  // offline vdisk, or not serving (with no hold)
  uint64_t rerouted = 0; // began here, sent on to the vdisk's new owner
  uint64_t held = 0;     // waited for the node to serve again
  uint64_t held_failed = 0;  // of those, failed: it did not in time
};

class ForwardFacility final : public Facility {
 public:
  // `remote` null: a standalone node, everything is local. `channel`: the
  // data channel's path, tried first (null: the interconnect's only).
  // `gate`: the node's lease (null: the route table alone says whether it
  // serves); `hold_ms`: how long a request waits for the node to serve
  // again (0: it fails at once).
  ForwardFacility(IoServer& local, IoServer* remote, IoClient* return_port,
                  ChannelForwarder* channel = nullptr, const ServiceGate* gate = nullptr,
                  uint64_t hold_ms = 0);

  const char* kind() const override { return "forward"; }
  // Cookies of this facility's own intercepts.
  static constexpr uint64_t kLocal = 0, kViaChannel = 1;
  void set_routes(std::shared_ptr<const RouteTable> routes) {
    if (channel_) channel_->set_routes(routes);
    routes_ = std::move(routes);
  }
  void set_view(const FacilityView& view) override;
  void submit(IoRequestPtr request) override;
  // A completion, back on this core: of a forwarded request, or of a
  // local one (sent on to the owner if the vdisk moved away meanwhile).
  void io_done(IoRequestPtr request) override;
  // Held requests go on once the node serves again (the gate opens with
  // no message to this core), or fail once they have waited `hold_ms`.
  uint64_t tick_ms() const override { return remote_ && hold_ms_ ? kHoldTickMs : 0; }
  void tick(uint64_t now_ms) override;
  nlohmann::json inspect() const override;
  const ForwardStats& stats() const { return stats_; }
  size_t holding() const { return held_.size(); }

 private:
  static constexpr uint64_t kHoldTickMs = 10;
  struct Held {
    IoRequestPtr request;
    uint64_t until_ms;  // fails with EIO once the clock is past it
  };
  // Whether this node serves now: its lease and its route table.
  bool serving() const { return (!gate_ || gate_->open()) && routes_ && routes_->serving; }
  // Where a request goes once the node serves: down here, on the data
  // channel or to the interconnect (or EIO: its group is offline).
  void route(IoRequestPtr request);
  void release_held();

  IoServer& local_;
  IoServer* remote_;
  IoClient* return_port_;
  ChannelForwarder* channel_;
  const ServiceGate* gate_;
  uint64_t hold_ms_;
  std::shared_ptr<const RouteTable> routes_;
  std::deque<Held> held_;  // in arrival order, so by deadline too
  ForwardStats stats_;
};

}  // namespace sve

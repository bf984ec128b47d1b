#pragma once
// The top of a node's facility stack in a cluster: sends each request to
// the node that owns its vdisk (model/ownership.hpp). A request for a vdisk
// this node owns goes on down the local stack; one for a vdisk another node
// owns goes on the core's data channel to that node (channel_forwarder.hpp)
// when it can, and otherwise to the interconnect, which carries it to that
// node and brings its completion back through `return_port` (a message to
// this core), so the completion reaches the front end on its own core. A
// vdisk whose I/O group is offline, or any request while the node is not
// serving, fails with EIO.
//
// Free of the actor runtime; not thread-safe (one core's thread runs submit
// and io_done).
#include <cstdint>
#include <memory>

#include "facility/facility.hpp"
#include "io/interconnect/channel_forwarder.hpp"
#include "io/protocol.hpp"
#include "model/ownership.hpp"

namespace sve {

struct ForwardStats {
  uint64_t local = 0;
  uint64_t forwarded = 0;
  uint64_t on_channel = 0;  // of those, answered on the data channel
  uint64_t refused = 0;  // offline vdisk, or not serving
  uint64_t rerouted = 0; // began here, sent on to the vdisk's new owner
};

class ForwardFacility final : public Facility {
 public:
  // `remote` null: a standalone node, everything is local. `channel`: the
  // data channel's path, tried first (null: the interconnect's only).
  ForwardFacility(IoServer& local, IoServer* remote, IoClient* return_port,
                  ChannelForwarder* channel = nullptr);

  const char* kind() const override { return "forward"; }
  // Cookies of this facility's own intercepts.
  static constexpr uint64_t kLocal = 0, kViaChannel = 1;
  void set_routes(std::shared_ptr<const RouteTable> routes) {
    if (channel_) channel_->set_routes(routes);
    routes_ = std::move(routes);
  }
  void set_view(const FacilityView& view) override {
    if (view.routes) set_routes(view.routes);
  }
  void submit(IoRequestPtr request) override;
  // A completion, back on this core: of a forwarded request, or of a
  // local one (sent on to the owner if the vdisk moved away meanwhile).
  void io_done(IoRequestPtr request) override;
  nlohmann::json inspect() const override {
    nlohmann::json j{{"local", stats_.local}, {"forwarded", stats_.forwarded},
                     {"on_channel", stats_.on_channel}, {"refused", stats_.refused},
                     {"rerouted", stats_.rerouted}};
    if (channel_) j["channel"] = channel_->inspect();
    return j;
  }
  const ForwardStats& stats() const { return stats_; }

 private:
  IoServer& local_;
  IoServer* remote_;
  IoClient* return_port_;
  ChannelForwarder* channel_;
  std::shared_ptr<const RouteTable> routes_;
  ForwardStats stats_;
};

}  // namespace sve

#include "io/interconnect/forward_facility.hpp"

#include <cerrno>

#include <spdlog/spdlog.h>

namespace sve {

ForwardFacility::ForwardFacility(IoServer& local, IoServer* remote, IoClient* return_port,
                                 ChannelForwarder* channel, const ServiceGate* gate,
                                 uint64_t hold_ms)
    : local_(local),
      remote_(remote),
      return_port_(return_port),
      channel_(channel),
      gate_(gate),
      hold_ms_(hold_ms) {}

void ForwardFacility::submit(IoRequestPtr request) {
  if (!remote_) {
    ++stats_.local;
    local_.submit(std::move(request));
    return;
  }
  if (!serving()) {
    if (hold_ms_ == 0) {
      ++stats_.refused;
      complete(std::move(request), EIO);
      return;
    }
    ++stats_.held;
    held_.push_back({std::move(request), monotonic_ms() + hold_ms_});
    return;
  }
  // (Those held before it go first.)
  if (!held_.empty()) release_held();
  route(std::move(request));
}

void ForwardFacility::release_held() {
  // One line a change, not a request: what hosts saw of it.
  spdlog::info("forward: {} host requests waited up to {} ms for this node to serve again",
               held_.size(), monotonic_ms() + hold_ms_ - held_.front().until_ms);
  std::deque<Held> held;
  held.swap(held_);
  for (Held& h : held) route(std::move(h.request));
}

void ForwardFacility::set_view(const FacilityView& view) {
  if (view.routes) set_routes(view.routes);
  if (!held_.empty() && serving()) release_held();
}

void ForwardFacility::tick(uint64_t now_ms) {
  if (held_.empty()) return;
  if (serving()) return release_held();
  uint64_t failed = 0;
  while (!held_.empty() && held_.front().until_ms <= now_ms) {
    ++failed;
    IoRequestPtr request = std::move(held_.front().request);
    held_.pop_front();
    complete(std::move(request), EIO);
  }
  if (failed == 0) return;
  stats_.held_failed += failed;
  spdlog::warn("forward: {} host requests failed with EIO: this node did not serve again "
               "within {} ms ({})",
               failed, hold_ms_,
               gate_ && !gate_->open() ? gate_->why_closed() : "its route table does not serve");
}

nlohmann::json ForwardFacility::inspect() const {
  nlohmann::json j{{"local", stats_.local},           {"forwarded", stats_.forwarded},
                   {"on_channel", stats_.on_channel}, {"refused", stats_.refused},
                   {"rerouted", stats_.rerouted},     {"held", stats_.held},
                   {"held_failed", stats_.held_failed}, {"holding", held_.size()},
                   {"hold_ms", hold_ms_}};
  if (channel_) j["channel"] = channel_->inspect();
  return j;
}

void ForwardFacility::route(IoRequestPtr request) {
  if (routes_->offline(request->volume)) {
    ++stats_.refused;
    complete(std::move(request), EIO);
    return;
  }
  if (routes_->local(request->volume)) {
    ++stats_.local;
    // Its completion comes back here: the vdisk may move away meanwhile.
    request->intercept(this, kLocal);
    local_.submit(std::move(request));
    return;
  }
  if (request->op == IoOp::block_status && !channel_) {
    // Carried by the data channel only: without it, all data, which NBD
    // allows (a hole may always be reported as data).
    put_all_data(*request);
    complete(std::move(request), 0);
    return;
  }
  ++stats_.forwarded;
  if (channel_) {
    // Its completion comes back here, on this core.
    request->intercept(this, kViaChannel);
    channel_->submit(std::move(request));
    return;
  }
  request->intercept(return_port_, 0);
  remote_->submit(std::move(request));
}

void ForwardFacility::io_done(IoRequestPtr request) {
  bool via_channel = request->cookie == kViaChannel;
  request->restore();
  if (via_channel) {
    if (request->status != ChannelForwarder::kNotSent) {
      ++stats_.on_channel;
      IoClient* client = request->client;
      client->io_done(std::move(request));
      return;
    }
    // The channel could not get it run: the interconnect's path, which
    // waits for the route table to settle. A block status does not take
    // it: all data.
    if (request->op == IoOp::block_status) {
      put_all_data(*request);
      request->status = 0;
      IoClient* client = request->client;
      client->io_done(std::move(request));
      return;
    }
    request->status = 0;
    request->intercept(return_port_, 0);
    remote_->submit(std::move(request));
    return;
  }
  // Executed here, but the vdisk moved to another node before it was done
  // (the cache sends it back, never having acknowledged it): to the owner.
  if (request->status == ESTALE && remote_) {
    ++stats_.rerouted;
    request->status = 0;
    request->intercept(return_port_, 0);
    remote_->submit(std::move(request));
    return;
  }
  IoClient* client = request->client;
  client->io_done(std::move(request));
}

}  // namespace sve

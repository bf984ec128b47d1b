#include "io/interconnect/forward_facility.hpp"

#include <cerrno>

namespace sve {

ForwardFacility::ForwardFacility(IoServer& local, IoServer* remote, IoClient* return_port,
                                 ChannelForwarder* channel)
    : local_(local), remote_(remote), return_port_(return_port), channel_(channel) {}

void ForwardFacility::submit(IoRequestPtr request) {
  if (!remote_) {
    ++stats_.local;
    local_.submit(std::move(request));
    return;
  }
  if (!routes_ || !routes_->serving || routes_->offline(request->volume)) {
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

#include "io/interconnect/forward_facility.hpp"

#include <cerrno>

namespace sve {

ForwardFacility::ForwardFacility(IoServer& local, IoServer* remote, IoClient* return_port)
    : local_(local), remote_(remote), return_port_(return_port) {}

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
    request->intercept(this, 0);
    local_.submit(std::move(request));
    return;
  }
  ++stats_.forwarded;
  request->intercept(return_port_, 0);
  remote_->submit(std::move(request));
}

void ForwardFacility::io_done(IoRequestPtr request) {
  request->restore();
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

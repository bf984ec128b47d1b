#include "io/interconnect/channel_forwarder.hpp"

#include <algorithm>
#include <cerrno>

#include "io/buffer/buffer_pool.hpp"
#include "io/request_pool.hpp"

namespace sve {
namespace {

constexpr uint64_t kIndexMask = 0xffffffffu;

// A free slot of `slots` (a new one when none is free): its index.
template <class Slot>
uint32_t take_slot(std::vector<Slot>& slots, std::vector<uint32_t>& free) {
  if (free.empty()) {
    slots.emplace_back();
    return static_cast<uint32_t>(slots.size() - 1);
  }
  uint32_t index = free.back();
  free.pop_back();
  return index;
}

}  // namespace

ChannelForwarder::ChannelForwarder(channel::PeerChannels& channels, IoServer& below, CoreIo& io,
                                   const ServiceGate* gate)
    : channels_(channels),
      below_(below),
      io_(io),
      gate_(gate),
      requests_account_("forwarded", io.frontend_requests(), 0, io.frontend_requests().limit()),
      pages_account_("forwarded", io.frontend_buffers(), 0, io.frontend_buffers().limit()) {
  channels_.bind(static_cast<channel::ForwardEndpoint*>(this));
}

ChannelForwarder::~ChannelForwarder() { channels_.bind(static_cast<channel::ForwardEndpoint*>(nullptr)); }

void ChannelForwarder::submit(IoRequestPtr request) {
  const channel::PeerChannelsSetup& setup = channels_.setup();
  const RouteTable* routes = routes_.get();
  const VdiskRoute* r = routes && routes->serving ? routes->find(request->volume) : nullptr;
  channel::DataChannel* c = nullptr;
  if (r && r->owner != 0 && r->owner != routes->self && !r->hold &&
      request->volume % setup.cores == setup.core)
    c = channels_.up(r->owner);
  if (!c) {
    ++stats_.not_sent;
    complete(std::move(request), kNotSent);
    return;
  }
  uint32_t index = take_slot(outbound_, free_outbound_);
  Outbound& slot = outbound_[index];
  // The serial tells a late answer for an earlier user of the slot apart.
  slot.id = (next_serial_++ << 32) | index;
  slot.request = request;
  channel::OutForward out;
  out.origin = setup.self;
  out.vdisk = request->volume;
  out.id = slot.id;
  out.generation = routes->generation;
  out.body.offset = request->offset;
  out.body.length = request->length;
  out.body.op = static_cast<uint32_t>(request->op);
  out.body.flags = request->flags;
  if (request->op == IoOp::block_status)  // the most extents it takes
    out.body.flags = std::clamp<uint32_t>(block_status_capacity(*request), 1,
                                          channel::kMaxStatusExtents);
  out.hold = request;
  if (!c->send_forward(std::move(out))) {
    slot.request.reset();
    free_outbound_.push_back(index);
    ++stats_.not_sent;
    complete(std::move(request), kNotSent);
    return;
  }
  ++stats_.sent;
}

ChannelForwarder::Outbound* ChannelForwarder::waiting(uint64_t id) {
  uint64_t index = id & kIndexMask;
  if (index >= outbound_.size() || outbound_[index].id != id || !outbound_[index].request)
    return nullptr;  // not ours (any more)
  return &outbound_[index];
}

const char* ChannelForwarder::forwarded_data(uint64_t id, uint32_t vdisk, uint64_t offset,
                                             uint64_t bytes) {
  Outbound* slot = waiting(id);
  if (!slot) return nullptr;
  const IoRequest& r = *slot->request;
  if (r.op != IoOp::write || r.volume != vdisk || !r.buffer || offset < r.offset ||
      bytes > r.length || offset - r.offset > r.length - bytes)
    return nullptr;
  return r.buffer->contiguous(r.buffer_offset + (offset - r.offset), bytes);
}

void ChannelForwarder::copy_held(uint64_t id) {
  Outbound* slot = waiting(id);
  if (!slot) return;
  IoRequestPtr request = std::move(slot->request);
  free_outbound_.push_back(static_cast<uint32_t>(id & kIndexMask));
  ++stats_.held_early;
  complete(std::move(request), 0);
}

void ChannelForwarder::on_forward_answer(const channel::ForwardAnswerIn& in) {
  Outbound* slot = waiting(in.id);
  if (!slot) return;  // not ours (any more), or acknowledged when its copy came
  IoRequestPtr request = std::move(slot->request);
  free_outbound_.push_back(static_cast<uint32_t>(in.id & kIndexMask));
  int32_t status = in.status;
  // Not run there (ESTALE: not the owner; EAGAIN: no room; EXDEV: another
  // core), or the connection ended first: another path.
  if (status == ESTALE || status == EAGAIN || status == EXDEV || status == EOPNOTSUPP ||
      status == ECONNRESET)
    status = kNotSent;
  if (status == 0 && request->op == IoOp::block_status) {
    // The owner's answer page, checked by whoever reads it
    // (get_block_status); one that does not fit is no answer.
    if (in.bytes < 4 || request->buffer_offset + in.bytes > request->buffer->size()) {
      status = EIO;
    } else {
      request->buffer->copy_in(request->buffer_offset, in.bytes, in.data);
      if (get_block_status(*request).empty()) status = EIO;
    }
  } else if (status == EILSEQ && request->op == IoOp::compare_and_write) {
    request->miscompare_at = in.miscompare_at;
  } else if (status == 0 && request->op == IoOp::read) {
    if (in.bytes != request->length) {
      status = EIO;
    } else if (in.bytes > 0) {
      request->buffer->copy_in(request->buffer_offset, in.bytes, in.data);
      stats_.bytes_copied += in.bytes;
    }
  }
  if (status == kNotSent) ++stats_.not_sent;
  complete(std::move(request), status);
}

bool ChannelForwarder::runs_here(uint32_t vdisk) const {
  const channel::PeerChannelsSetup& setup = channels_.setup();
  const RouteTable* routes = routes_.get();
  return gate_ && gate_->open() && routes && routes->serving && routes->find(vdisk) &&
         routes->local(vdisk) && vdisk % setup.cores == setup.core;
}

void ChannelForwarder::refuse(channel::ReplyTo reply, uint64_t id, int32_t status) {
  ++stats_.refused;
  channels_.answer_forward(reply, id, status, nullptr, 0);
}

void ChannelForwarder::on_forward(channel::ReplyTo reply, uint32_t from,
                                  const channel::ForwardIn& in) {
  const channel::FrameHeader& h = *in.header;
  const channel::ForwardBody& b = *in.body;
  if (!runs_here(h.vdisk)) return refuse(reply, h.id, ESTALE);
  auto op = static_cast<IoOp>(b.op);
  // Room in this core's pools now, or the peer takes the other path.
  if (!requests_account_.try_acquire(1)) return refuse(reply, h.id, EAGAIN);
  IoRequestPtr request = io_.requests().make(requests_account_);
  // A read's room, the data out (a compare-and-write's: expected, then
  // new), or a block status' answer page.
  uint64_t buffer_bytes = op == IoOp::read ? b.length : data_out_bytes(op, b.length);
  if (op == IoOp::block_status) buffer_bytes = channel::kStatusAnswerBytes;
  if (buffer_bytes > 0) {
    uint64_t pages = BufferPool::pages_for(buffer_bytes);
    if (!pages_account_.try_acquire(pages)) return refuse(reply, h.id, EAGAIN);
    BufferRef buffer = io_.buffers().build(pages_account_, buffer_bytes);
    if (!buffer) {
      pages_account_.release(pages);
      return refuse(reply, h.id, EAGAIN);
    }
    if (data_out_bytes(op, b.length) > 0) {
      buffer->copy_in(0, buffer_bytes, in.data);
      stats_.bytes_copied += buffer_bytes;
    }
    request->buffer = std::move(buffer);
  }
  request->op = op;
  request->flags = op == IoOp::block_status ? 0 : b.flags & io_flags::host_settable;
  request->volume = h.vdisk;
  request->offset = b.offset;
  request->length = op == IoOp::flush ? 0 : b.length;
  if (op == IoOp::write) {
    request->forwarded_by = from;
    request->forward_id = h.id;
  }
  if (op == IoOp::block_status) block_status_request(*request, b.flags);
  uint32_t index = take_slot(inbound_, free_inbound_);
  inbound_[index] = {reply, h.id};
  request->client = this;
  request->cookie = index;
  ++stats_.served;
  below_.submit(std::move(request));
}

void ChannelForwarder::io_done(IoRequestPtr request) {
  auto index = static_cast<uint32_t>(request->cookie);
  Inbound slot = inbound_[index];
  free_inbound_.push_back(index);
  int32_t status = request->status;
  uint64_t bytes = status == 0 && request->op == IoOp::read ? request->length : 0;
  if (status == 0 && request->op == IoOp::block_status) {
    // The page's extents: its count, and that many (as many as asked).
    uint32_t count = 0;
    request->buffer->copy_out(request->buffer_offset, 4, &count);
    bytes = 4 + 8ull * std::min(count, block_status_capacity(*request));
  }
  // The connection may have ended meanwhile: the peer sends it again.
  channels_.answer_forward(slot.reply, slot.id, status, std::move(request), bytes);
}

nlohmann::json ChannelForwarder::inspect() const {
  return {{"sent", stats_.sent}, {"not_sent", stats_.not_sent}, {"served", stats_.served},
          {"refused", stats_.refused}, {"bytes_copied", stats_.bytes_copied},
          {"held_early", stats_.held_early},
          {"waiting_answers", outbound_.size() - free_outbound_.size()},
          {"serving", serving()}};
}

}  // namespace sve

#include "io/nbd/nbd_session.hpp"

#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sve::nbd {
namespace {

// The page a block-status answer comes back in (511 extents at most).
constexpr uint64_t kStatusAnswerBytes = 4096;

constexpr int kMaxSendIov = IOV_MAX;
constexpr size_t kDrainBytes = 64 * 1024;

// Flags each command accepts; anything else earns EINVAL. DF only once
// structured replies are on (it is advertised only then).
uint16_t allowed_flags(uint16_t type, bool structured) {
  switch (type) {
    case kCmdRead: return structured ? kCmdFlagDf : 0;
    case kCmdWrite:
    case kCmdTrim: return kCmdFlagFua;
    case kCmdWriteZeroes: return kCmdFlagFua | kCmdFlagNoHole | kCmdFlagFastZero;
    case kCmdBlockStatus: return kCmdFlagReqOne;
    default: return 0;
  }
}

// NBD_CMD_CACHE is a read whose data is not sent: it leaves the range in
// the cache (the cache keeps what a read brings in). BLOCK_STATUS asks the
// stack (IoOp::block_status: the thin layer knows the holes) and gets its
// answer in a page.
bool to_op(uint16_t type, IoOp& op) {
  switch (type) {
    case kCmdRead:
    case kCmdCache: op = IoOp::read; return true;
    case kCmdWrite: op = IoOp::write; return true;
    case kCmdFlush: op = IoOp::flush; return true;
    case kCmdTrim: op = IoOp::trim; return true;
    case kCmdWriteZeroes: op = IoOp::write_zeroes; return true;
    default: return false;
  }
}

uint64_t reserve_if_possible(PoolAccount& parent, uint64_t wanted) {
  return parent.can_reserve(wanted) ? wanted : 0;
}

// A host that stops reading its replies keeps their buffers: it may hold a
// quarter of the front end's memory, or one largest request if that is more.
uint64_t page_limit(const SessionLimits& limits, const PoolAccount& frontend) {
  if (limits.buffer_limit_pages) return limits.buffer_limit_pages;
  return std::max(BufferPool::pages_for(kMaxPayloadBytes), frontend.limit() / 4);
}

}  // namespace

void Slot::io_done(IoRequestPtr done) {
  bool is_write = done->op == IoOp::write || done->op == IoOp::write_zeroes;
  error = to_wire_error(done->status, is_write);
  if (type == kCmdBlockStatus && error == 0) {
    // The stack's answer, checked: a malformed one is an error, not a lie.
    std::vector<StatusExtent> found = get_block_status(*done);
    if (found.empty()) {
      error = kEIO;
    } else {
      std::vector<Extent> extents;
      for (const StatusExtent& e : found) extents.push_back({e.length, e.flags});
      extra = encode_block_status(session->negotiated_.allocation_context, extents);
    }
  }
  if (done->status == ENOTSUP && fast_zero) error = kENOTSUP;
  with_data = error == 0 && type == kCmdRead && done->length > 0;
  // Only a read's reply needs its buffer: a write's goes back to the pool now.
  if (!with_data) done->buffer.reset();
  request = std::move(done);
  session->reply_later(*this);
}

NbdSession::NbdSession(int fd, ExportInfo info, Negotiated negotiated, CoreIo& core,
                       SlotPool& slots, IoServer& top, const SessionLimits& limits,
                       std::function<void(NbdSession*)> closed,
                       std::unique_ptr<TlsRecords> tls)
    : fd_(fd),
      info_(std::move(info)),
      negotiated_(negotiated),
      core_(core),
      slots_(slots),
      top_(top),
      closed_(std::move(closed)),
      requests_account_("connection", core.frontend_requests(),
                        reserve_if_possible(core.frontend_requests(), 2),
                        limits.max_in_flight),
      buffers_account_("connection", core.frontend_buffers(),
                       reserve_if_possible(core.frontend_buffers(), limits.buffer_reserve_pages),
                       page_limit(limits, core.frontend_buffers())),
      tls_(std::move(tls)),
      send_iov_(new iovec[kMaxSendIov]) {
  context_waiter_.session = this;
  context_waiter_.account = &requests_account_;
  context_waiter_.need = 1;
  pages_waiter_.session = this;
  pages_waiter_.account = &buffers_account_;
  recv_op_.session = send_op_.session = this;
  send_op_.on_done = &NbdSession::on_sent;
  tls_recv_op_.session = tls_send_op_.session = this;
  tls_recv_op_.on_done = &NbdSession::on_tls_received;
  tls_send_op_.on_done = &NbdSession::on_tls_sent;
}

NbdSession::~NbdSession() {
  assert(outstanding_ == 0 && !recv_in_flight_ && !send_in_flight_);
}

void NbdSession::start() { receive_header(); }

void NbdSession::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

// Receives the next header. Data usually waits in the socket already (the
// host pipelines), so try a non-blocking recv first and go through the ring
// only when the socket is empty. Requests found this way are handled in a
// loop, not by recursion, and at most kPumpBudget at a time so that one busy
// connection leaves the reactor to the others.
void NbdSession::receive_header() {
  phase_ = Phase::header;
  if (pumping_) {
    header_wanted_ = true;
    return;
  }
  pumping_ = true;
  unsigned budget = kPumpBudget;
  do {
    header_wanted_ = false;
    if (budget-- == 0) {
      post_header_receive();
      break;
    }
    recv_iov_[0] = {header_ + header_have_, kRequestBytes - header_have_};
    ssize_t n = receive_now(recv_iov_, 1);
    if (n == -EAGAIN) {
      post_header_receive();
      break;
    }
    ++stats_.direct_receives;
    recv_in_flight_ = true;  // on_header expects to end a receive
    on_header(static_cast<int>(n));
  } while (header_wanted_ && phase_ == Phase::header);
  pumping_ = false;
}

void NbdSession::post_header_receive() {
  recv_iov_[0] = {header_ + header_have_, kRequestBytes - header_have_};
  receive_later(recv_iov_, 1, &NbdSession::on_header, MSG_WAITALL);
}

ssize_t NbdSession::receive_now(iovec* iov, int n) {
  if (tls_) return tls_receive_now(iov, n);
  ssize_t got;
  if (n == 1) {
    got = ::recv(fd_, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT);
  } else {
    recv_msg_ = msghdr{};
    recv_msg_.msg_iov = iov;
    recv_msg_.msg_iovlen = static_cast<size_t>(n);
    got = ::recvmsg(fd_, &recv_msg_, MSG_DONTWAIT);
  }
  return got < 0 ? -errno : got;
}

void NbdSession::receive_later(iovec* iov, int n, Done done, int flags) {
  recv_in_flight_ = true;
  if (tls_) return tls_receive_later(iov, n, done);
  recv_op_.on_done = done;
  io_uring_sqe* sqe = core_.ring().sqe_for(&recv_op_);
  if (n == 1) {
    io_uring_prep_recv(sqe, fd_, iov[0].iov_base, iov[0].iov_len, flags);
    return;
  }
  recv_msg_ = msghdr{};
  recv_msg_.msg_iov = iov;
  recv_msg_.msg_iovlen = static_cast<size_t>(n);
  io_uring_prep_recvmsg(sqe, fd_, &recv_msg_, flags);
}

void NbdSession::on_header(int res) {
  recv_in_flight_ = false;
  // A receive that completes after the session ended (a send failed
  // meanwhile) brings nothing to act on.
  if (phase_ == Phase::closing) return maybe_finish();
  if (res <= 0) {
    end(res == 0 || header_have_ == 0 ? "client disconnected"
                                      : std::string("receive failed: ") + std::strerror(-res));
    return;
  }
  header_have_ += static_cast<size_t>(res);
  if (header_have_ < kRequestBytes) {
    receive_header();
    return;
  }
  header_have_ = 0;
  request_ = decode_request(header_);
  if (request_.magic != kRequestMagic) return end("bad request magic");
  if (request_.type == kCmdDisc) return end("client sent DISC");
  ++stats_.requests;
  phase_ = Phase::context;
  if (requests_account_.acquire_or_wait(context_waiter_)) {
    got_context();
  } else {
    ++stats_.waits;
  }
}

bool NbdSession::ContextWaiter::on_grant() {
  session->got_context();
  return true;
}

uint32_t NbdSession::refusal() const {
  IoOp op;
  if (!to_op(request_.type, op) && request_.type != kCmdBlockStatus) return kEINVAL;
  if (request_.flags & ~allowed_flags(request_.type, negotiated_.structured)) return kEINVAL;
  // Over the advertised maximum (a cache request is only advice: it is
  // cut to the maximum instead).
  if ((request_.type == kCmdRead || request_.type == kCmdWrite) &&
      request_.length > kMaxPayloadBytes)
    return kEINVAL;
  if (request_.type == kCmdBlockStatus) {
    uint64_t end = request_.offset + request_.length;
    if (!negotiated_.allocation_context || request_.length == 0 || end < request_.offset ||
        end > info_.size_bytes)
      return kEINVAL;
  }
  // Read-only (the vdisk, or its mapping to this host): nothing changes it.
  if (info_.read_only && (request_.type == kCmdWrite || request_.type == kCmdTrim ||
                          request_.type == kCmdWriteZeroes))
    return kEPERM;
  // (A node without a lease: the stack holds the request, then fails it.)
  return 0;
}

void NbdSession::got_context() {
  Slot* slot = slots_.take();
  slot->session = this;
  slot->cookie = request_.cookie;
  slot->offset = request_.offset;
  slot->type = request_.type;
  slot->error = 0;
  slot->with_data = false;
  slot->owns_unit = false;
  slot->fast_zero = false;
  slot->no_fragment = request_.flags & kCmdFlagDf;
  slot->extra.clear();
  slot->parts.clear();
  ++outstanding_;
  slot_ = slot;
  if (uint32_t error = refusal()) {
    // No request for the stack: the slot holds the unit. A write's payload
    // is still on the wire and is read and dropped first.
    slot->error = error;
    slot->owns_unit = true;
    if (request_.type == kCmdWrite && request_.length > 0) {
      drain_left_ = request_.length;
      return drain_payload();
    }
    slot_ = nullptr;
    reply_later(*slot);
    if (phase_ != Phase::closing) receive_header();
    return;
  }
  IoOp op = IoOp::write;
  to_op(request_.type, op);
  uint64_t length = request_.length;
  if (request_.type == kCmdCache) length = std::min<uint64_t>(length, kMaxPayloadBytes);
  if (request_.type == kCmdBlockStatus) {
    // Asked of the stack (the thin layer knows the holes); its answer
    // comes back in a page.
    op = IoOp::block_status;
    length = std::min<uint64_t>(length, info_.size_bytes - request_.offset);
  }
  IoRequestPtr io = core_.requests().make(requests_account_);
  io->op = op;
  io->flags = 0;
  if (request_.flags & kCmdFlagFua) io->flags |= io_flags::fua;
  if (request_.flags & kCmdFlagNoHole) io->flags |= io_flags::no_hole;
  if (request_.flags & kCmdFlagFastZero) io->flags |= io_flags::fast_zero;
  slot->fast_zero = request_.flags & kCmdFlagFastZero;
  io->volume = info_.volume;
  io->offset = request_.offset;
  io->length = op == IoOp::flush ? 0 : length;
  io->cookie = request_.cookie;
  io->client = slot;
  slot->request = std::move(io);

  bool needs_buffer = (op == IoOp::write || op == IoOp::read) && length > 0;
  if (op == IoOp::block_status) {
    needs_buffer = true;
    length = kStatusAnswerBytes;
  }
  if (!needs_buffer) return dispatch();
  phase_ = Phase::buffer;
  pages_waiter_.bytes = length;
  pages_waiter_.need = BufferPool::pages_for(length);
  if (buffers_account_.acquire_or_wait(pages_waiter_)) {
    BufferRef b = core_.buffers().build(buffers_account_, length);
    if (b) return got_buffer(std::move(b));
    buffers_account_.release(pages_waiter_.need);  // fragmented: wait for frees
    buffers_account_.wait(pages_waiter_);
  }
  ++stats_.waits;
}

bool NbdSession::PagesWaiter::on_grant() {
  BufferRef b = session->core_.buffers().build(*account, bytes);
  if (!b) return false;
  session->got_buffer(std::move(b));
  return true;
}

void NbdSession::got_buffer(BufferRef buffer) {
  slot_->request->buffer = std::move(buffer);
  if (request_.type == kCmdBlockStatus)
    block_status_request(*slot_->request, (request_.flags & kCmdFlagReqOne) ? 1 : UINT32_MAX);
  if (request_.type == kCmdWrite) {
    payload_have_ = 0;
    return receive_payload();
  }
  dispatch();
}

void NbdSession::receive_payload() {
  phase_ = Phase::payload;
  const Buffer& b = *slot_->request->buffer;
  int n = b.slice(payload_have_, request_.length - payload_have_, recv_iov_,
                  Buffer::kMaxSegments);
  // Straight into the buffer, without the ring if the data is there already.
  ssize_t got = receive_now(recv_iov_, n);
  if (got != -EAGAIN) {
    ++stats_.direct_receives;
    recv_in_flight_ = true;
    on_payload(static_cast<int>(got));
    return;
  }
  receive_later(recv_iov_, n, &NbdSession::on_payload, MSG_WAITALL);
}

// In a loop, not by recursion (a payload may be up to 4 GiB), and at most
// kPumpBudget pieces at a time before the ring takes over, so that one
// connection draining leaves the reactor to the others.
void NbdSession::drain_payload() {
  phase_ = Phase::drain;
  if (!drain_buffer_) drain_buffer_.reset(new uint8_t[kDrainBytes]);
  for (unsigned budget = kPumpBudget; drain_left_ > 0; --budget) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(drain_left_, kDrainBytes));
    recv_iov_[0] = {drain_buffer_.get(), want};
    ssize_t got = budget ? receive_now(recv_iov_, 1) : -EAGAIN;
    if (got == -EAGAIN) {
      receive_later(recv_iov_, 1, &NbdSession::on_drained, 0);
      return;
    }
    ++stats_.direct_receives;
    if (got <= 0) return end("client left in the middle of a write");
    drain_left_ -= std::min<uint64_t>(drain_left_, static_cast<uint64_t>(got));
  }
  drained();
}

void NbdSession::on_drained(int res) {
  recv_in_flight_ = false;
  if (phase_ == Phase::closing) return maybe_finish();
  if (res <= 0) return end("client left in the middle of a write");
  drain_left_ -= std::min<uint64_t>(drain_left_, static_cast<uint64_t>(res));
  if (drain_left_ > 0) return drain_payload();
  drained();
}

void NbdSession::drained() {
  Slot* slot = slot_;
  slot_ = nullptr;
  reply_later(*slot);
  if (phase_ != Phase::closing) receive_header();
}

void NbdSession::on_payload(int res) {
  recv_in_flight_ = false;
  if (phase_ == Phase::closing) return maybe_finish();
  if (res <= 0) {
    return end("client left in the middle of a write");
  }
  payload_have_ += static_cast<uint64_t>(res);
  if (payload_have_ < request_.length) return receive_payload();
  dispatch();
}

// The request is complete on our side: into the stack (or straight to the
// reply queue when it was malformed), and on to the next header.
void NbdSession::dispatch() {
  Slot* slot = slot_;
  slot_ = nullptr;
  if (slot->error) {
    slot->request.reset();
    reply_later(*slot);
  } else {
    top_.submit(IoRequestPtr(slot->request));
  }
  if (phase_ != Phase::closing) receive_header();
}

void NbdSession::reply_later(Slot& slot) {
  if (slot.error) ++stats_.errors;
  encode_reply(slot);
  reply_queue_.push_back(slot);
  send_replies();
}

// With structured replies, a read is answered in one chunk (so DF always
// holds): its data, or its error; block status always is. Everything else
// keeps the simple reply, as the protocol allows.
void NbdSession::encode_reply(Slot& slot) {
  bool chunked = slot.type == kCmdBlockStatus ||
                 (negotiated_.structured && slot.type == kCmdRead);
  if (!chunked || (slot.error && !negotiated_.structured)) {
    encode_simple_reply(slot.error, slot.cookie, slot.header);
    slot.header_bytes = kReplyBytes;
    return;
  }
  if (slot.error) {
    slot.extra = encode_error_chunk(slot.error, {});
    encode_chunk_header(kReplyFlagDone, kReplyTypeError, slot.cookie,
                        static_cast<uint32_t>(slot.extra.size()), slot.header);
  } else if (slot.type == kCmdBlockStatus) {
    encode_chunk_header(kReplyFlagDone, kReplyTypeBlockStatus, slot.cookie,
                        static_cast<uint32_t>(slot.extra.size()), slot.header);
  } else if (slot.with_data && slot.request->hole_mask && !slot.no_fragment) {
    return encode_read_chunks(slot);
  } else if (slot.with_data) {
    encode_chunk_header(kReplyFlagDone, kReplyTypeOffsetData, slot.cookie,
                        static_cast<uint32_t>(kOffsetDataBytes + slot.request->length),
                        slot.header);
    encode_offset(slot.offset, slot.header + kChunkHeaderBytes);
    slot.header_bytes = kChunkHeaderBytes + kOffsetDataBytes;
    return;
  } else {  // a read of nothing
    encode_chunk_header(kReplyFlagDone, kReplyTypeNone, slot.cookie, 0, slot.header);
  }
  slot.header_bytes = kChunkHeaderBytes;
}

// The holes the stack found (thin) go as OFFSET_HOLE chunks, the rest as
// OFFSET_DATA chunks, in order; the last carries DONE. Without DF only:
// with it, the data goes in one chunk, zeros and all.
void NbdSession::encode_read_chunks(Slot& slot) {
  std::vector<ReadRun> runs = read_runs(*slot.request);
  slot.header_bytes = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const ReadRun& run = runs[i];
    uint16_t flags = i + 1 == runs.size() ? kReplyFlagDone : 0;
    Slot::Part part;
    part.extra_from = static_cast<uint32_t>(slot.extra.size());
    size_t at = slot.extra.size();
    slot.extra.resize(at + kChunkHeaderBytes + kOffsetDataBytes);
    uint8_t* bytes = slot.extra.data() + at;
    if (run.hole) {
      encode_chunk_header(flags, kReplyTypeOffsetHole, slot.cookie, kOffsetDataBytes + 4, bytes);
      encode_offset(slot.offset + run.from, bytes + kChunkHeaderBytes);
      put_u32(slot.extra, static_cast<uint32_t>(run.length));
    } else {
      encode_chunk_header(flags, kReplyTypeOffsetData, slot.cookie,
                          static_cast<uint32_t>(kOffsetDataBytes + run.length), bytes);
      encode_offset(slot.offset + run.from, bytes + kChunkHeaderBytes);
      part.data_from = run.from;
      part.data_bytes = run.length;
    }
    part.extra_bytes = static_cast<uint32_t>(slot.extra.size() - part.extra_from);
    // A hole follows the part before it in `extra`: one iovec for both.
    if (run.hole && !slot.parts.empty() && slot.parts.back().data_bytes == 0)
      slot.parts.back().extra_bytes += part.extra_bytes;
    else
      slot.parts.push_back(part);
  }
}

// Gathers queued replies into one sendmsg; one send in flight at a time.
void NbdSession::send_replies() {
  if (send_in_flight_ || reply_queue_.empty()) return;
  if (finished_) return;
  int n = 0;
  while (!reply_queue_.empty()) {
    Slot& s = reply_queue_.front();
    if (!s.parts.empty()) {
      // At most a header and a segment more than the buffer has per part.
      int bound = static_cast<int>(2 * s.parts.size()) + static_cast<int>(Buffer::kMaxSegments);
      if (n && n + bound > kMaxSendIov) break;
      IoRequest& r = *s.request;
      for (const Slot::Part& part : s.parts) {
        send_iov_[n++] = {s.extra.data() + part.extra_from, part.extra_bytes};
        if (!part.data_bytes) continue;
        int k = r.buffer->slice(r.buffer_offset + part.data_from, part.data_bytes,
                                send_iov_.get() + n, kMaxSendIov - n);
        assert(k >= 0);  // the bound above holds them
        n += k;
      }
      reply_queue_.pop_front();
      sending_.push_back(s);
      continue;
    }
    int need = s.extra.empty() ? 1 : 2;
    iovec data[Buffer::kMaxSegments];
    int parts = 0;
    if (s.with_data) {
      IoRequest& r = *s.request;
      parts = r.buffer->slice(r.buffer_offset, r.length, data, Buffer::kMaxSegments);
      need += parts;
    }
    if (n + need > kMaxSendIov) break;
    send_iov_[n++] = {s.header, s.header_bytes};
    if (!s.extra.empty()) send_iov_[n++] = {s.extra.data(), s.extra.size()};
    for (int i = 0; i < parts; ++i) send_iov_[n++] = data[i];
    reply_queue_.pop_front();
    sending_.push_back(s);
  }
  send_iov_count_ = n;
  send_iov_first_ = 0;
  send_in_flight_ = true;
  send_now();
}

void NbdSession::send_now() {
  if (tls_) return tls_send();
  send_msg_ = msghdr{};
  send_msg_.msg_iov = send_iov_.get();
  send_msg_.msg_iovlen = static_cast<size_t>(send_iov_count_);
  io_uring_sqe* sqe = core_.ring().sqe_for(&send_op_);
  io_uring_prep_sendmsg(sqe, fd_, &send_msg_, MSG_NOSIGNAL | MSG_WAITALL);
}

void NbdSession::on_sent(int res) {
  send_in_flight_ = false;
  if (res > 0) {
    // A short send: move past what went out and send the rest.
    if (!consume_sent(static_cast<size_t>(res))) {
      iovec* iov = send_iov_.get();
      send_msg_.msg_iov = iov + send_iov_first_;
      send_msg_.msg_iovlen = static_cast<size_t>(send_iov_count_ - send_iov_first_);
      send_in_flight_ = true;
      io_uring_prep_sendmsg(core_.ring().sqe_for(&send_op_), fd_, &send_msg_,
                            MSG_NOSIGNAL | MSG_WAITALL);
      return;
    }
  } else {
    end(res == 0 ? "client stopped receiving" : std::string("send failed: ") + std::strerror(-res));
  }
  sent_all();
}

bool NbdSession::consume_sent(size_t bytes) {
  iovec* iov = send_iov_.get();
  while (send_iov_first_ < send_iov_count_ && bytes >= iov[send_iov_first_].iov_len)
    bytes -= iov[send_iov_first_++].iov_len;
  if (send_iov_first_ == send_iov_count_) return true;
  iov[send_iov_first_].iov_base = static_cast<char*>(iov[send_iov_first_].iov_base) + bytes;
  iov[send_iov_first_].iov_len -= bytes;
  return false;
}

// Sent (or undeliverable): the slots, their requests and buffers go back.
void NbdSession::sent_all() {
  while (!sending_.empty()) {
    Slot& s = sending_.front();
    sending_.pop_front();
    give_back(s);
  }
  if (finished_) {
    // Nothing more can be sent: drop replies still queued.
    while (!reply_queue_.empty()) {
      Slot& s = reply_queue_.front();
      reply_queue_.pop_front();
      give_back(s);
    }
  }
  send_replies();
  maybe_finish();
}

// A slot, its request and the request's buffer go back to their pools; the
// request's unit goes back with the request, or with the slot if it had none.
void NbdSession::give_back(Slot& slot) {
  slot.request.reset();
  if (slot.owns_unit) requests_account_.release(1);
  slot.owns_unit = false;
  --outstanding_;
  slots_.give(&slot);
}

void NbdSession::end(std::string reason) {
  // (Ended already, by the other direction: what was in flight is over.)
  if (phase_ == Phase::closing) return maybe_finish();
  phase_ = Phase::closing;
  reason_ = std::move(reason);
  if (tls_ && !send_in_flight_) {
    // A close_notify, best effort, so that the host's TLS sees an end
    // rather than a cut. (Not while records are on their way.)
    tls_->close();
    iovec bye = tls_->outbox();
    (void)!::send(fd_, bye.iov_base, bye.iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  ::shutdown(fd_, SHUT_RDWR);  // a pending receive ends; so do further sends
  requests_account_.cancel(context_waiter_);
  buffers_account_.cancel(pages_waiter_);
  if (slot_) {  // a request that never reached the stack
    Slot* slot = slot_;
    slot_ = nullptr;
    give_back(*slot);
  }
  maybe_finish();
}

// The session ends once nothing of it is left in flight: no receive, no
// send, no request in the stack.
void NbdSession::maybe_finish() {
  if (phase_ != Phase::closing || finished_) return;
  if (recv_in_flight_ || send_in_flight_) return;
  if (outstanding_ > reply_queue_.size()) return;  // requests still in the stack
  finished_ = true;
  while (!reply_queue_.empty()) {
    Slot& s = reply_queue_.front();
    reply_queue_.pop_front();
    give_back(s);
  }
  auto closed = std::move(closed_);
  closed(this);  // may destroy this session
}

}  // namespace sve::nbd

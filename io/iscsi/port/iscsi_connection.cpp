// The connection's transport: PDUs in (header, then data segment straight
// to where it belongs), PDUs out (a queue gathered into sendmsg calls), and
// its end. What each PDU means is iscsi_commands.cpp.
#include "io/iscsi/port/iscsi_connection.hpp"

#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>

#include <spdlog/spdlog.h>

#include "util/crc.hpp"

namespace sve::iscsi {
namespace {

uint64_t reserve_if_possible(PoolAccount& parent, uint64_t wanted) {
  return parent.can_reserve(wanted) ? wanted : 0;
}

// Digests go on the wire least significant byte first.
void put_digest(uint8_t* at, uint32_t crc) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<uint8_t>(crc >> (8 * i));
}
uint32_t get_digest(const uint8_t* at) {
  return uint32_t{at[0]} | uint32_t{at[1]} << 8 | uint32_t{at[2]} << 16 | uint32_t{at[3]} << 24;
}

// A host that stops reading its Data-In keeps their buffers: it may hold a
// quarter of the front end's memory, or one largest command if that is more.
uint64_t page_limit(const PoolAccount& frontend) {
  return std::max(BufferPool::pages_for(uint64_t{scsi::kMaxTransferBlocks} * scsi::kBlockBytes),
                  frontend.limit() / 4);
}

}  // namespace

IscsiConnection::IscsiConnection(int fd, ConnectionSetup setup, CoreIo& core, TaskPool& tasks,
                                 CoreRoute route, std::function<void(IscsiConnection*)> closed)
    : fd_(fd),
      setup_(std::move(setup)),
      core_(core),
      tasks_(tasks),
      route_(std::move(route)),
      closed_(std::move(closed)),
      requests_account_("iscsi connection", core.frontend_requests(),
                        reserve_if_possible(core.frontend_requests(), 2),
                        setup_.max_in_flight),
      buffers_account_("iscsi connection", core.frontend_buffers(),
                       reserve_if_possible(core.frontend_buffers(), setup_.buffer_reserve_pages),
                       page_limit(core.frontend_buffers())),
      session_(setup_.session ? setup_.session
                              : std::make_shared<SessionShared>(setup_.exp_cmd_sn,
                                                                setup_.command_window)),
      window_(session_->window),
      window_used_(session_->window_used),
      stat_sn_(setup_.stat_sn),
      send_iov_(new iovec[kMaxIov]),
      attentions_(session_->attentions) {
  digests_.header = setup_.params.header_digest;
  digests_.data = setup_.params.data_digest;
  task_waiter_.connection = this;
  task_waiter_.account = &requests_account_;
  task_waiter_.need = 1;
  pages_waiter_.connection = this;
  pages_waiter_.account = &buffers_account_;
  recv_op_.connection = send_op_.connection = this;
  send_op_.on_done = &IscsiConnection::on_sent;
  session_->connections.push_back(this);
}

IscsiConnection::~IscsiConnection() {
  assert(outstanding_ == 0 && !recv_in_flight_ && !send_in_flight_);
  auto& all = session_->connections;
  all.erase(std::remove(all.begin(), all.end(), this), all.end());
}

void IscsiConnection::start() { receive_header(); }

void IscsiConnection::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

Numbers IscsiConnection::numbers() {
  Numbers n;
  n.stat_sn = stat_sn_;
  n.exp_cmd_sn = window_.exp_cmd_sn();
  // The window shrinks by the commands taken and not yet answered, so an
  // initiator never has more than command_window queued here.
  n.max_cmd_sn = n.exp_cmd_sn + (setup_.command_window - window_used_) - 1;
  return n;
}

ssize_t IscsiConnection::receive_now(iovec* iov, int n) {
  recv_msg_ = msghdr{};
  recv_msg_.msg_iov = iov;
  recv_msg_.msg_iovlen = static_cast<size_t>(n);
  ssize_t got = ::recvmsg(fd_, &recv_msg_, MSG_DONTWAIT);
  return got < 0 ? -errno : got;
}

void IscsiConnection::receive_later(iovec* iov, int n, void (IscsiConnection::*done)(int)) {
  recv_in_flight_ = true;
  recv_op_.on_done = done;
  recv_msg_ = msghdr{};
  recv_msg_.msg_iov = iov;
  recv_msg_.msg_iovlen = static_cast<size_t>(n);
  io_uring_prep_recvmsg(core_.ring().sqe_for(&recv_op_), fd_, &recv_msg_, MSG_WAITALL);
}

// Headers usually wait in the socket already (initiators pipeline): a
// non-blocking receive first, the ring only when the socket is empty; in a
// loop, at most kPumpBudget PDUs before the ring takes over so that one
// busy connection leaves the reactor to the others.
void IscsiConnection::receive_header() {
  if (phase_ == Phase::closing) return;
  phase_ = Phase::header;
  if (pumping_) {
    header_wanted_ = true;
    return;
  }
  pumping_ = true;
  unsigned budget = kPumpBudget;
  do {
    header_wanted_ = false;
    recv_iov_[0] = {header_ + header_have_, header_want_ - header_have_};
    ssize_t n = budget-- ? receive_now(recv_iov_, 1) : -EAGAIN;
    if (n == -EAGAIN) {
      receive_later(recv_iov_, 1, &IscsiConnection::on_header_bytes);
      break;
    }
    recv_in_flight_ = true;  // on_header_bytes ends a receive
    on_header_bytes(static_cast<int>(n));
  } while (header_wanted_ && phase_ == Phase::header);
  pumping_ = false;
}

void IscsiConnection::on_header_bytes(int res) {
  recv_in_flight_ = false;
  // A receive that ends after the connection did (a logout answered, a
  // protocol error) brings nothing to act on: what it read is dropped.
  if (phase_ == Phase::closing) return maybe_finish();
  if (res <= 0) {
    return end(res == 0 || header_have_ == 0
                   ? "initiator disconnected"
                   : std::string("receive failed: ") + std::strerror(-res));
  }
  header_have_ += static_cast<size_t>(res);
  if (header_have_ == kBhsBytes && header_want_ == kBhsBytes) {
    bhs_ = Bhs::from(header_);
    layout_ = layout_of(bhs_, digests_, setup_.params.target_max_recv);
    if (!layout_.error.empty()) return end(layout_.error);
    header_want_ = kBhsBytes + layout_.header_rest();
  }
  if (header_have_ < header_want_) return receive_header();
  header_have_ = 0;
  header_want_ = kBhsBytes;
  if (digests_.header) {
    const size_t covered = kBhsBytes + layout_.ahs_bytes;
    if (crc32c(header_, covered) != get_digest(header_ + covered))
      return end("a header digest that does not match");
  }
  on_header();
}

void IscsiConnection::receive_data(Sink sink, Task* task, uint64_t buffer_at,
                                   uint64_t buffer_room) {
  phase_ = Phase::data;
  sink_ = sink;
  current_ = task;
  const uint32_t bytes = layout_.data_bytes;
  int n = 0;
  uint32_t placed = 0;
  if (sink == Sink::control) {
    control_data_.resize(bytes);
    if (bytes) data_iov_[n++] = {control_data_.data(), bytes};
    placed = bytes;
  } else if (task && task->request && task->request->buffer && buffer_at < buffer_room) {
    placed = static_cast<uint32_t>(std::min<uint64_t>(bytes, buffer_room - buffer_at));
    const IoRequest& r = *task->request;
    int k = placed ? r.buffer->slice(r.buffer_offset + buffer_at, placed, data_iov_,
                                     Buffer::kMaxSegments)
                   : 0;
    if (k < 0) return end("a data segment the buffer cannot take");  // (cannot happen)
    n = k;
  }
  if (placed < bytes) {  // the rest goes nowhere
    if (!scratch_) scratch_.reset(new uint8_t[setup_.params.target_max_recv]);
    data_iov_[n++] = {scratch_.get(), bytes - placed};
  }
  data_n_ = n;
  std::copy(data_iov_, data_iov_ + n, recv_iov_);
  const uint32_t tail = layout_.data_rest() - bytes;  // padding and digest
  if (tail) recv_iov_[n++] = {tail_in_, tail};
  recv_n_ = n;
  recv_first_ = 0;
  if (n == 0) return on_data();
  continue_data();
}

// In a loop, not by recursion, while the socket has the bytes.
void IscsiConnection::continue_data() {
  for (;;) {
    ssize_t got = receive_now(recv_iov_ + recv_first_, recv_n_ - recv_first_);
    if (got == -EAGAIN) {
      receive_later(recv_iov_ + recv_first_, recv_n_ - recv_first_,
                    &IscsiConnection::on_data_bytes);
      return;
    }
    if (got <= 0) return end("initiator left in the middle of a PDU");
    if (received(static_cast<size_t>(got))) return on_data();
  }
}

void IscsiConnection::on_data_bytes(int res) {
  recv_in_flight_ = false;
  if (phase_ == Phase::closing) return maybe_finish();
  if (res <= 0) return end("initiator left in the middle of a PDU");
  if (received(static_cast<size_t>(res))) return on_data();
  continue_data();
}

bool IscsiConnection::received(size_t bytes) {
  while (recv_first_ < recv_n_ && bytes >= recv_iov_[recv_first_].iov_len)
    bytes -= recv_iov_[recv_first_++].iov_len;
  if (recv_first_ == recv_n_) return true;
  recv_iov_[recv_first_].iov_base = static_cast<char*>(recv_iov_[recv_first_].iov_base) + bytes;
  recv_iov_[recv_first_].iov_len -= bytes;
  return false;
}

bool IscsiConnection::data_digest_ok() const {
  uint32_t crc = 0;
  for (int i = 0; i < data_n_; ++i) crc = crc32c_extend(crc, data_iov_[i].iov_base, data_iov_[i].iov_len);
  const uint32_t pad = layout_.data_padded_bytes - layout_.data_bytes;
  crc = crc32c_extend(crc, tail_in_, pad);
  return crc == get_digest(tail_in_ + pad);
}

void IscsiConnection::on_data() {
  if (layout_.data_digest_bytes && !data_digest_ok()) return end("a data digest that does not match");
  Task* task = current_;
  current_ = nullptr;
  switch (sink_) {
    case Sink::command: return scsi_data_in(*task);
    case Sink::data_out: return data_out_in(*task);
    case Sink::control: return control_data_in(*task);
    case Sink::discard: return receive_header();
  }
}

void IscsiConnection::queue(Task* task, const Bhs& header, bool from_buffer, uint32_t from,
                            uint32_t length, bool last) {
  OutPdu& p = out_.emplace_back();
  std::memcpy(p.head, header.data(), kBhsBytes);
  p.head_bytes = kBhsBytes;
  if (digests_.header) {
    put_digest(p.head + kBhsBytes, crc32c(p.head, kBhsBytes));
    p.head_bytes += kDigestBytes;
  }
  p.task = task;
  p.from_buffer = from_buffer;
  p.from = from;
  p.length = length;
  p.last = last;
  const uint32_t pad = padded(length) - length;
  std::memset(p.tail, 0, sizeof p.tail);
  p.tail_bytes = static_cast<uint8_t>(pad);
  if (digests_.data && length) {
    uint32_t crc = 0;
    if (from_buffer) {
      const IoRequest& r = *task->request;
      iovec parts[Buffer::kMaxSegments];
      int k = r.buffer->slice(r.buffer_offset + from, length, parts, Buffer::kMaxSegments);
      for (int i = 0; i < k; ++i) crc = crc32c_extend(crc, parts[i].iov_base, parts[i].iov_len);
    } else {
      crc = crc32c_extend(crc, task->data.data() + from, length);
    }
    crc = crc32c_extend(crc, p.tail, pad);
    put_digest(p.tail + pad, crc);
    p.tail_bytes = static_cast<uint8_t>(pad + kDigestBytes);
  }
  if (task) ++task->queued;
  send_queued();
}

// Gathers queued PDUs into one sendmsg; one send in flight at a time.
void IscsiConnection::send_queued() {
  if (send_in_flight_ || finished_ || out_.empty()) return;
  int n = 0;
  size_t count = 0;
  for (const OutPdu& p : out_) {
    iovec data[Buffer::kMaxSegments];
    int parts = 0;
    if (p.length && p.from_buffer) {
      const IoRequest& r = *p.task->request;
      parts = r.buffer->slice(r.buffer_offset + p.from, p.length, data, Buffer::kMaxSegments);
    } else if (p.length) {
      data[0] = {p.task->data.data() + p.from, p.length};
      parts = 1;
    }
    if (n + 2 + parts > kMaxIov) break;
    send_iov_[n++] = {const_cast<uint8_t*>(p.head), p.head_bytes};
    for (int i = 0; i < parts; ++i) send_iov_[n++] = data[i];
    if (p.tail_bytes) send_iov_[n++] = {const_cast<uint8_t*>(p.tail), p.tail_bytes};
    ++count;
  }
  out_in_flight_ = count;
  send_iov_count_ = n;
  send_iov_first_ = 0;
  send_in_flight_ = true;
  send_msg_ = msghdr{};
  send_msg_.msg_iov = send_iov_.get();
  send_msg_.msg_iovlen = static_cast<size_t>(n);
  io_uring_prep_sendmsg(core_.ring().sqe_for(&send_op_), fd_, &send_msg_,
                        MSG_NOSIGNAL | MSG_WAITALL);
}

void IscsiConnection::on_sent(int res) {
  send_in_flight_ = false;
  if (res > 0) {
    size_t bytes = static_cast<size_t>(res);
    iovec* iov = send_iov_.get();
    while (send_iov_first_ < send_iov_count_ && bytes >= iov[send_iov_first_].iov_len)
      bytes -= iov[send_iov_first_++].iov_len;
    if (send_iov_first_ < send_iov_count_) {  // a short send: the rest
      iov[send_iov_first_].iov_base = static_cast<char*>(iov[send_iov_first_].iov_base) + bytes;
      iov[send_iov_first_].iov_len -= bytes;
      send_msg_.msg_iov = iov + send_iov_first_;
      send_msg_.msg_iovlen = static_cast<size_t>(send_iov_count_ - send_iov_first_);
      send_in_flight_ = true;
      io_uring_prep_sendmsg(core_.ring().sqe_for(&send_op_), fd_, &send_msg_,
                            MSG_NOSIGNAL | MSG_WAITALL);
      return;
    }
  }
  // Sent (or undeliverable): their tasks may go back.
  for (size_t i = 0; i < out_in_flight_; ++i) {
    Task* t = out_.front().task;
    out_.pop_front();
    if (t) {
      --t->queued;
      settle(*t);
    }
  }
  out_in_flight_ = 0;
  if (res <= 0)
    return end(res == 0 ? "initiator stopped receiving"
                        : std::string("send failed: ") + std::strerror(-res));
  if (close_after_send_ && out_.empty()) return end("logged out");
  send_queued();
  maybe_finish();
}

void IscsiConnection::settle(Task& t) {
  if (t.finished && t.queued == 0 && !t.in_stack && !t.cluster_waits) give_back(t);
}

// A task, its request and the request's buffer go back to their pools; the
// unit goes back with the request, or here if the task had none.
void IscsiConnection::give_back(Task& t) {
  if (t.counted) {  // (ended without an answer)
    t.counted = false;
    --window_used_;
  }
  leave_set(t);
  live_.erase(live_.iterator_to(t));
  if (t.waiting_for) forget_waiter(t);
  t.request.reset();
  if (t.owns_unit) requests_account_.release(1);
  t.owns_unit = false;
  --outstanding_;
  tasks_.give(&t);
}

void IscsiConnection::end(std::string reason) {
  if (phase_ == Phase::closing) return maybe_finish();
  phase_ = Phase::closing;
  reason_ = std::move(reason);
  ::shutdown(fd_, SHUT_RDWR);  // a pending receive ends; so do further sends
  requests_account_.cancel(task_waiter_);
  buffers_account_.cancel(pages_waiter_);
  // Tasks that never reached the stack end here: the one being received,
  // writes still waiting for their data.
  if (current_ && !current_->in_stack && !current_->finished) current_->finished = true;
  current_ = nullptr;
  for (Task* t : awaiting_) t->finished = true;
  awaiting_.clear();
  for (Task& t : live_)
    if (t.held) {  // (held for older tasks)
      unhold(t);
      t.finished = true;
    }
  maybe_finish();
}

// The connection ends once nothing of it is left in flight: no receive, no
// send, no request in the stack.
void IscsiConnection::maybe_finish() {
  if (phase_ != Phase::closing || finished_) return;
  if (recv_in_flight_ || send_in_flight_) return;
  for (const Task& t : live_)
    if (t.in_stack || t.cluster_waits) return;
  finished_ = true;
  // Nothing more can be sent: what waits is dropped, every task goes back.
  out_.clear();
  while (!live_.empty()) {
    Task& t = live_.front();
    t.queued = 0;
    t.finished = true;
    give_back(t);
  }
  auto closed = std::move(closed_);
  closed(this);  // may destroy this connection
}

}  // namespace sve::iscsi

#include "io/channel/data_channel.hpp"

#include "io/service_gate.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sve::channel {
namespace {

constexpr size_t kInitialReceiveBytes = 1u << 20;
constexpr size_t kMaxIov = 256;        // pieces per sendmsg (a frame may have more: it
                                       // then leaves in several calls)
char kZeros[8] = {};                   // padding to 8
constexpr uint64_t kMaxSendBytes = 4u << 20;  // bytes per sendmsg

}  // namespace

DataChannel::DataChannel(UringEngine& ring, UniqueFd fd, ChannelHandler& handler,
                         ChannelLimits limits)
    : ring_(ring), fd_(std::move(fd)), handler_(handler), limits_(limits) {
  recv_op_.channel = this;
  recv_op_.on_done = &DataChannel::received;
  send_op_.channel = this;
  send_op_.on_done = &DataChannel::sent;
  hold_op_.channel = this;
  hold_op_.on_done = &DataChannel::held;
  delay_op_.channel = this;
  delay_op_.on_done = &DataChannel::delayed;
  in_.resize(kInitialReceiveBytes);
  iov_.reserve(kMaxIov);
}

DataChannel::~DataChannel() = default;

void DataChannel::start() {
  if (closing_ || recv_busy_) return;
  receive();
}

void DataChannel::seal(const SessionKeys& keys) {
  sealer_.emplace(keys.send);
  opener_.emplace(keys.receive);
}

bool DataChannel::send_hello(const FrameHeader& hello, const Nonce& nonce) {
  Out out;
  out.header = hello;
  out.owned.resize(kNonceBytes / 8);
  std::memcpy(out.owned.data(), nonce.bytes, kNonceBytes);
  out.body.push_back({out.owned.data(), kNonceBytes});
  return queue(std::move(out));
}

bool DataChannel::send_proof(const PeerMac& proof) {
  Out out;
  out.header.type = static_cast<uint8_t>(FrameType::proof);
  out.header.body_bytes = kProofBytes;
  out.owned.resize(kProofBytes / 8);
  std::memcpy(out.owned.data(), proof.data(), kProofBytes);
  out.body.push_back({out.owned.data(), kProofBytes});
  return queue(std::move(out));
}

bool DataChannel::send_mirror(OutMirror copy) {
  if (copy.count == 0 || copy.count > kMaxBlocks || unanswered_.count(copy.id)) return false;
  Out out;
  FrameHeader& h = out.header;
  h.type = static_cast<uint8_t>(FrameType::mirror);
  h.origin = copy.origin;
  h.vdisk = copy.vdisk;
  h.count = copy.count;
  h.id = copy.id;
  h.epoch = copy.epoch;
  h.body_bytes = static_cast<uint32_t>(body_bytes_for(FrameType::mirror, copy.count));
  size_t n = copy.count;
  out.body.push_back({const_cast<uint64_t*>(copy.blocks), n * 8});
  out.body.push_back({const_cast<uint64_t*>(copy.seqs), n * 8});
  if (copy.data) {
    out.body.push_back({const_cast<char*>(copy.data), n * kBlockBytes});
  } else {
    if (!copy.block_data) return false;
    for (size_t i = 0; i < n; ++i)
      out.body.push_back({const_cast<char*>(copy.block_data[i]), kBlockBytes});
  }
  out.keep = std::move(copy.keep);
  out.window = kHeaderBytes + h.body_bytes;
  return queue(std::move(out));
}

bool DataChannel::send_mirror_ref(OutMirrorRef copy) {
  size_t n = copy.count;
  if (n == 0 || n > kMaxBlocks || !copy.blocks || !copy.seqs || unanswered_.count(copy.id))
    return false;
  Out out;
  FrameHeader& h = out.header;
  h.type = static_cast<uint8_t>(FrameType::mirror_ref);
  h.origin = copy.origin;
  h.vdisk = copy.vdisk;
  h.count = static_cast<uint32_t>(n);
  h.id = copy.id;
  h.epoch = copy.epoch;
  h.body_bytes = static_cast<uint32_t>(body_bytes_for(FrameType::mirror_ref, n));
  out.forward_id = copy.forward_id;
  out.body.push_back({const_cast<uint64_t*>(copy.blocks), n * 8});
  out.body.push_back({const_cast<uint64_t*>(copy.seqs), n * 8});
  out.keep = std::move(copy.keep);
  out.window = kHeaderBytes + h.body_bytes;
  return queue(std::move(out));
}

bool DataChannel::send_release(uint32_t origin, uint32_t vdisk, std::vector<uint64_t> blocks,
                               std::vector<uint64_t> seqs) {
  if (blocks.size() != seqs.size() || blocks.size() > kMaxBlocks) return false;
  Out out;
  FrameHeader& h = out.header;
  h.type = static_cast<uint8_t>(FrameType::release);
  h.origin = origin;
  h.vdisk = vdisk;
  h.count = static_cast<uint32_t>(blocks.size());
  h.body_bytes = static_cast<uint32_t>(body_bytes_for(FrameType::release, h.count));
  out.owned = std::move(blocks);
  out.owned.insert(out.owned.end(), seqs.begin(), seqs.end());
  if (!out.owned.empty()) out.body.push_back({out.owned.data(), out.owned.size() * 8});
  return queue(std::move(out));
}

// The request's bytes [0, bytes) as body pieces, from its buffer's
// segments, padded to 8.
void DataChannel::add_buffer(Out& out, const IoRequest& request, uint64_t bytes) {
  iovec parts[Buffer::kMaxSegments];
  int n = request.buffer->slice(request.buffer_offset, bytes, parts, Buffer::kMaxSegments);
  for (int i = 0; i < n; ++i) out.body.push_back(parts[i]);
  if (pad8(bytes) != bytes) out.body.push_back({kZeros, pad8(bytes) - bytes});
}

bool DataChannel::send_forward(OutForward request) {
  const ForwardBody& b = request.body;
  const auto op = static_cast<IoOp>(b.op);
  bool read = op == IoOp::read;
  bool status = op == IoOp::block_status;
  if (b.length > max_forward_length(b.op) || forwards_out_.count(request.id)) return false;
  // The data it carries: a write's, or a compare-and-write's two halves.
  uint64_t data = data_out_bytes(op, b.length);
  if (data > 0 && (!request.hold || !request.hold->buffer ||
                   request.hold->buffer_offset + data > request.hold->buffer->size()))
    return false;
  Out out;
  FrameHeader& h = out.header;
  h.type = static_cast<uint8_t>(FrameType::forward);
  h.origin = request.origin;
  h.vdisk = request.vdisk;
  h.id = request.id;
  h.epoch = request.generation;
  h.body_bytes = static_cast<uint32_t>(sizeof(ForwardBody) + pad8(data));
  out.forward = b;
  if (data > 0) add_buffer(out, *request.hold, data);
  out.hold = std::move(request.hold);
  // The request's data out, or a read's data (a status page) coming back.
  out.window = kHeaderBytes + h.body_bytes + (read ? pad8(b.length) : status ? kStatusAnswerBytes : 0);
  return queue(std::move(out));
}

bool DataChannel::send_forward_answer(uint64_t id, int32_t status, IoRequestPtr request,
                                      uint64_t bytes) {
  if (bytes > kMaxForwardBytes ||
      (bytes > 0 && (!request || !request->buffer ||
                     request->buffer_offset + bytes > request->buffer->size())))
    return false;
  Out out;
  FrameHeader& h = out.header;
  h.type = static_cast<uint8_t>(FrameType::forward_answer);
  h.id = id;
  h.status = status;
  h.count = static_cast<uint32_t>(bytes);
  h.body_bytes = static_cast<uint32_t>(pad8(bytes));
  if (status == EILSEQ && request && request->op == IoOp::compare_and_write)
    h.epoch = request->miscompare_at;
  if (bytes > 0) add_buffer(out, *request, bytes);
  out.hold = std::move(request);
  return queue(std::move(out));
}

bool DataChannel::queue(Out out) {
  if (closing_) return false;
  out.tagged = sealer_.has_value();
  out.bytes = kHeaderBytes + out.header.body_bytes + (out.tagged ? kTagBytes : 0);
  if (uint64_t delay = handler_.send_delay_ms()) out.ready_ms = monotonic_ms() + delay;
  waiting_.push_back(std::move(out));
  admit();
  pump();
  return true;
}

// Frames join the send in order; a copy or forwarded request only within
// the window (one always, so that one larger than the window still goes).
void DataChannel::admit() {
  while (!waiting_.empty()) {
    Out& out = waiting_.front();
    if (out.window > 0) {
      if (window_used_ > 0 && window_used_ + out.window > limits_.window_bytes) {
        ++stats_.window_waits;
        return;
      }
      window_used_ += out.window;
      if (out.header.type == static_cast<uint8_t>(FrameType::forward))
        forwards_out_[out.header.id] = out.window;
      else
        unanswered_[out.header.id] = out.window;
    }
    sending_.push_back(std::move(out));
    waiting_.pop_front();
  }
}

void DataChannel::pump() {
  if (send_busy_ || closing_ || sending_.empty()) return;
  uint64_t now = sending_.front().ready_ms && !front_sent_ ? monotonic_ms() : 0;
  if (now && sending_.front().ready_ms > now) {
    // Held back (a delay fault): a timer, counted as the send in flight.
    delay_for_.tv_sec = 0;
    delay_for_.tv_nsec = static_cast<long long>(
        std::min<uint64_t>(sending_.front().ready_ms - now, 500) * 1000000);
    io_uring_prep_timeout(ring_.sqe_for(&delay_op_), &delay_for_, 0, 0);
    send_busy_ = true;
    return;
  }
  iov_.clear();
  uint64_t bytes = 0;
  uint32_t frames = 0;
  bool first = true;
  for (Out& out : sending_) {
    if (!first && (iov_.size() + 2 + out.body.size() > kMaxIov || bytes >= kMaxSendBytes ||
                   (out.ready_ms && out.ready_ms > monotonic_ms())))
      break;
    // The front frame may be partly sent: skip what left already.
    uint64_t skip = first ? front_sent_ : 0;
    auto add = [&](void* base, uint64_t len) {
      if (skip >= len) {
        skip -= len;
        return;
      }
      if (iov_.size() == kMaxIov) return;  // the rest of the frame in the next call
      iov_.push_back({static_cast<char*>(base) + skip, len - skip});
      bytes += len - skip;
      skip = 0;
    };
    if (out.tagged && !out.tag_made) make_tag(out);
    add(&out.header, kHeaderBytes);
    if (out.header.type == static_cast<uint8_t>(FrameType::forward))
      add(&out.forward, sizeof(ForwardBody));
    if (out.header.type == static_cast<uint8_t>(FrameType::mirror_ref))
      add(&out.forward_id, sizeof out.forward_id);
    for (const iovec& part : out.body) add(part.iov_base, part.iov_len);
    if (out.tagged) add(out.tag, kTagBytes);
    ++frames;
    first = false;
  }
  msg_ = {};
  msg_.msg_iov = iov_.data();
  msg_.msg_iovlen = iov_.size();
  io_uring_sqe* sqe = ring_.sqe_for(&send_op_);
  io_uring_prep_sendmsg(sqe, fd_.get(), &msg_, MSG_NOSIGNAL);
  send_busy_ = true;
  ++stats_.sends;
}

// Frames are tagged in the order they first join a send, which is the
// order they leave in: the frame numbers match the peer's count. (The
// pieces' list is on the stack for a forwarded request or its answer, at
// most a buffer's segments; only a copy of many scattered blocks goes to
// the heap.)
void DataChannel::make_tag(Out& out) {
  boost::container::small_vector<iovec, Buffer::kMaxSegments + 4> parts;
  parts.push_back({&out.header, kHeaderBytes});
  if (out.header.type == static_cast<uint8_t>(FrameType::forward))
    parts.push_back({&out.forward, sizeof(ForwardBody)});
  if (out.header.type == static_cast<uint8_t>(FrameType::mirror_ref))
    parts.push_back({&out.forward_id, sizeof out.forward_id});
  parts.insert(parts.end(), out.body.begin(), out.body.end());
  sealer_->seal(parts.data(), parts.size(), out.tag);
  out.tag_made = true;
}

void DataChannel::sent(int res) {
  send_busy_ = false;
  if (res == -EINTR || res == -EAGAIN) {
    pump();
    return maybe_finish_close();
  }
  if (res <= 0) {
    close(res == 0 ? "the peer stopped receiving" : std::string("send: ") + std::strerror(-res));
    return maybe_finish_close();
  }
  stats_.bytes_sent += static_cast<uint64_t>(res);
  uint64_t left = static_cast<uint64_t>(res);
  while (left > 0 && !sending_.empty()) {
    Out& out = sending_.front();
    uint64_t rest = out.bytes - front_sent_;
    if (left < rest) {
      front_sent_ += left;
      left = 0;
      break;
    }
    left -= rest;
    front_sent_ = 0;
    ++stats_.frames_sent;
    sending_.pop_front();  // its memory may go now; an answer may be awaited
  }
  pump();
  maybe_finish_close();
}

void DataChannel::receive() {
  if (uint64_t hold = handler_.receive_hold_ms()) {
    // Not now: a timer instead, counted as the receive in flight.
    hold_for_.tv_sec = 0;
    hold_for_.tv_nsec = static_cast<long long>(std::min<uint64_t>(hold, 20)) * 1000000;
    io_uring_sqe* sqe = ring_.sqe_for(&hold_op_);
    io_uring_prep_timeout(sqe, &hold_for_, 0, 0);
    recv_busy_ = true;
    return;
  }
  if (have_ == in_.size()) {
    // Only a frame larger than the buffer fills it (parse() consumed every
    // whole frame): grow to that frame, within the limit checked already.
    const auto* h = reinterpret_cast<const FrameHeader*>(in_.data());
    in_.resize(kHeaderBytes + h->body_bytes + (opener_ ? kTagBytes : 0));
  }
  io_uring_sqe* sqe = ring_.sqe_for(&recv_op_);
  io_uring_prep_recv(sqe, fd_.get(), in_.data() + have_, in_.size() - have_, 0);
  recv_busy_ = true;
  ++stats_.receives;
}

void DataChannel::received(int res) {
  recv_busy_ = false;
  if (closing_) return maybe_finish_close();
  if (res == -EINTR || res == -EAGAIN) return receive();
  if (res <= 0) {
    close(res == 0 ? "the peer closed the connection"
                   : std::string("receive: ") + std::strerror(-res));
    return maybe_finish_close();
  }
  have_ += static_cast<size_t>(res);
  stats_.bytes_received += static_cast<uint64_t>(res);
  if (!parse()) return maybe_finish_close();
  if (closing_) return maybe_finish_close();
  receive();
}

void DataChannel::delayed(int res) {
  (void)res;  // -ETIME: the timer ran out
  send_busy_ = false;
  if (closing_) return maybe_finish_close();
  pump();
}

void DataChannel::held(int res) {
  (void)res;  // -ETIME: the timer ran out
  recv_busy_ = false;
  if (closing_) return maybe_finish_close();
  receive();
}

bool DataChannel::parse() {
  size_t at = 0;
  while (have_ - at >= kHeaderBytes) {
    FrameHeader h;
    std::memcpy(&h, in_.data() + at, kHeaderBytes);
    if (std::string why = check_header(h); !why.empty()) {
      close("bad frame from the peer: " + why);
      return false;
    }
    size_t framed = kHeaderBytes + h.body_bytes;
    size_t total = framed + (opener_ ? kTagBytes : 0);
    if (have_ - at < total) break;
    if (opener_ && !opener_->check(in_.data() + at, framed,
                                   reinterpret_cast<const uint8_t*>(in_.data() + at + framed))) {
      ++stats_.tampered;
      close("a frame from the peer failed its check (changed, replayed or injected on the path)");
      return false;
    }
    ++stats_.frames_received;
    if (!handle(h, in_.data() + at + kHeaderBytes)) return false;
    at += total;
    if (closing_) return true;
  }
  if (at > 0) {
    // The partial frame that is left moves to the front (8-aligned again).
    std::memmove(in_.data(), in_.data() + at, have_ - at);
    have_ -= at;
  }
  return true;
}

bool DataChannel::handle(const FrameHeader& h, const char* body) {
  auto type = static_cast<FrameType>(h.type);
  if (limits_.expect_hello && !hello_seen_ && type != FrameType::hello) {
    close("the first frame was not a hello");
    return false;
  }
  switch (type) {
    case FrameType::hello:
      if (hello_seen_ || !limits_.expect_hello) {
        close("an unexpected hello");
        return false;
      }
      hello_seen_ = true;
      if (!handler_.on_hello(h)) {
        close("hello refused");
        return false;
      }
      return true;
    case FrameType::mirror: {
      const auto* words = reinterpret_cast<const uint64_t*>(body);
      MirrorIn in{&h, words, words + h.count, body + size_t{h.count} * 16};
      answer_copy(h, handler_.on_mirror(in));
      return true;
    }
    case FrameType::mirror_ref: {
      const auto* words = reinterpret_cast<const uint64_t*>(body);
      answer_copy(h, handler_.on_mirror_ref(
                         MirrorRefIn{&h, words[0], words + 1, words + 1 + h.count}));
      return true;
    }
    case FrameType::mirror_ack: {
      auto it = unanswered_.find(h.id);
      if (it == unanswered_.end()) {
        ++stats_.stale_answers;  // not a copy this connection has out
        return true;
      }
      window_used_ -= it->second;
      unanswered_.erase(it);
      handler_.on_mirror_answer(h.id, h.status);
      admit();
      pump();
      return true;
    }
    case FrameType::release: {
      const auto* words = reinterpret_cast<const uint64_t*>(body);
      handler_.on_release(ReleaseIn{&h, words, words + h.count});
      return true;
    }
    case FrameType::forward: return handle_forward(h, body);
    case FrameType::forward_answer: return handle_forward_answer(h, body);
    case FrameType::challenge:
      if (!handler_.on_challenge(h, reinterpret_cast<const uint8_t*>(body))) {
        close("the listener did not prove that it holds the cluster key");
        return false;
      }
      return true;
    case FrameType::proof:  // (the listener's thread takes it, never a channel)
      close("an unexpected proof");
      return false;
  }
  close("unknown frame");
  return false;
}

void DataChannel::answer_copy(const FrameHeader& h, int32_t status) {
  Out ack;
  ack.header.type = static_cast<uint8_t>(FrameType::mirror_ack);
  ack.header.id = h.id;
  ack.header.vdisk = h.vdisk;
  ack.header.status = status;
  queue(std::move(ack));
}

bool DataChannel::handle_forward(const FrameHeader& h, const char* body) {
  ForwardBody b;
  std::memcpy(&b, body, sizeof b);
  if (std::string why = forward_body_error(h, b); !why.empty()) {
    close("bad frame from the peer: " + why);
    return false;
  }
  handler_.on_forward(ForwardIn{&h, &b, body + sizeof(ForwardBody)});
  return true;
}

bool DataChannel::handle_forward_answer(const FrameHeader& h, const char* body) {
  auto it = forwards_out_.find(h.id);
  if (it == forwards_out_.end()) {
    ++stats_.stale_answers;  // not a request this connection has out
    return true;
  }
  window_used_ -= it->second;
  forwards_out_.erase(it);
  handler_.on_forward_answer(ForwardAnswerIn{h.id, h.status, body, h.count, h.epoch});
  admit();
  pump();
  return true;
}

void DataChannel::close(const std::string& reason) {
  if (closing_) return;
  closing_ = true;
  reason_ = reason;
  // Ends the operations in flight: they complete, then the close finishes.
  ::shutdown(fd_.get(), SHUT_RDWR);
  maybe_finish_close();
}

void DataChannel::maybe_finish_close() {
  if (!closing_ || closed_ || recv_busy_ || send_busy_) return;
  closed_ = true;
  // Every copy and forwarded request not answered is failed, once: those
  // sent, then those that waited for the window.
  std::vector<uint64_t> failed, failed_forwards;
  for (const auto& [id, bytes] : unanswered_) failed.push_back(id);
  for (const auto& [id, bytes] : forwards_out_) failed_forwards.push_back(id);
  for (const Out& out : waiting_) {
    if (out.header.type == static_cast<uint8_t>(FrameType::mirror) ||
        out.header.type == static_cast<uint8_t>(FrameType::mirror_ref))
      failed.push_back(out.header.id);
    if (out.header.type == static_cast<uint8_t>(FrameType::forward))
      failed_forwards.push_back(out.header.id);
  }
  unanswered_.clear();
  forwards_out_.clear();
  waiting_.clear();
  sending_.clear();
  window_used_ = 0;
  for (uint64_t id : failed) handler_.on_mirror_answer(id, ECONNRESET);
  for (uint64_t id : failed_forwards) handler_.on_forward_answer(ForwardAnswerIn{id, ECONNRESET});
  handler_.on_closed(reason_);
}

}  // namespace sve::channel

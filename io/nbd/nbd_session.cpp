#include "io/nbd/nbd_session.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "hw/port/tcp.hpp"
#include "io/nbd/nbd_wire.hpp"

namespace sve::nbd {
namespace {

bool writev_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    auto left = static_cast<size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

// Flags each command accepts; anything else earns EINVAL.
uint16_t allowed_flags(uint16_t type) {
  switch (type) {
    case kCmdWrite:
    case kCmdTrim: return kCmdFlagFua;
    case kCmdWriteZeroes: return kCmdFlagFua | kCmdFlagNoHole;
    default: return 0;
  }
}

}  // namespace

NbdSession::NbdSession(int fd, ExportInfo info, IoServer& server, IoClient& completions,
                       uint32_t max_in_flight)
    : fd_(fd),
      info_(std::move(info)),
      server_(server),
      completions_(completions),
      max_in_flight_(max_in_flight) {}

void NbdSession::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

bool NbdSession::send_error_reply(uint64_t cookie, uint32_t error) {
  uint8_t head[kReplyBytes];
  encode_simple_reply(error, cookie, head);
  std::lock_guard lock(write_mu_);
  return send_all(fd_, head, sizeof head);
}

void NbdSession::wait_for_slot() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ < max_in_flight_; });
  ++in_flight_;
}

void NbdSession::drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void NbdSession::send_reply(IoRequestPtr done) {
  bool is_write = done->op == IoOp::write || done->op == IoOp::write_zeroes;
  uint32_t error = to_wire_error(done->status, is_write);
  uint8_t head[kReplyBytes];
  encode_simple_reply(error, done->cookie, head);
  iovec iov[2] = {{head, sizeof head}, {nullptr, 0}};
  int count = 1;
  if (error == 0 && done->op == IoOp::read && done->length > 0) {
    iov[1] = {done->data(), done->length};
    count = 2;
  }
  {
    std::lock_guard lock(write_mu_);
    if (!writev_all(fd_, iov, count)) ::shutdown(fd_, SHUT_RDWR);
  }
  done.reset();  // release the buffer before the reader may reuse the slot
  std::lock_guard lock(mu_);
  if (error) ++stats_.errors;
  --in_flight_;
  cv_.notify_all();
}

std::string NbdSession::run() {
  std::string reason = "client disconnected";
  for (;;) {
    uint8_t raw[kRequestBytes];
    if (!recv_all(fd_, raw, sizeof raw)) break;
    Request req = decode_request(raw);
    if (req.magic != kRequestMagic) {
      reason = "bad request magic";
      break;
    }
    if (req.type == kCmdDisc) {
      reason = "client sent DISC";
      break;
    }
    bool carries_payload = req.type == kCmdWrite;
    bool needs_buffer = carries_payload || req.type == kCmdRead;
    if (needs_buffer && req.length > kMaxPayloadBytes) {
      reason = "request of " + std::to_string(req.length) + " bytes exceeds the maximum";
      break;
    }
    IoRequestPtr io = make_request();
    if (needs_buffer) {
      io->buffer = Buffer::allocate(req.length);
      if (carries_payload && req.length && !recv_all(fd_, io->buffer->data(), req.length)) {
        reason = "client left in the middle of a write";
        break;
      }
    }
    ++stats_.requests;
    bool known = true;
    switch (req.type) {
      case kCmdRead: io->op = IoOp::read; break;
      case kCmdWrite: io->op = IoOp::write; break;
      case kCmdFlush: io->op = IoOp::flush; break;
      case kCmdTrim: io->op = IoOp::trim; break;
      case kCmdWriteZeroes: io->op = IoOp::write_zeroes; break;
      default: known = false;
    }
    if (!known || (req.flags & ~allowed_flags(req.type))) {
      if (!send_error_reply(req.cookie, kEINVAL)) break;
      continue;
    }
    if (req.flags & kCmdFlagFua) io->flags |= io_flags::fua;
    if (req.flags & kCmdFlagNoHole) io->flags |= io_flags::no_hole;
    io->volume = info_.volume;
    io->offset = req.offset;
    io->length = io->op == IoOp::flush ? 0 : req.length;
    io->cookie = req.cookie;
    io->client = &completions_;
    wait_for_slot();
    server_.submit(std::move(io));
  }
  drain();
  return reason;
}

}  // namespace sve::nbd

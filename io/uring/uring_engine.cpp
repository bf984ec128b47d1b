#include "io/uring/uring_engine.hpp"

#include <chrono>

#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sve {
namespace {

// user_data: a pointer (8-byte aligned) and a tag in its low bits.
constexpr uint64_t kTagMask = 7;
constexpr uint64_t kTagBlock = 0;     // an IoRequest
constexpr uint64_t kTagLinkHead = 1;  // an IoRequest's operation before its fsync
constexpr uint64_t kTagHandler = 2;   // a RingHandler
constexpr uint64_t kTagWake = 3;      // the wake-up eventfd read

int map_result_errno(int res) {
  int err = -res;
  return err == 0 ? EIO : err;
}

}  // namespace

Result<std::unique_ptr<UringEngine>> UringEngine::create(unsigned entries) {
  std::unique_ptr<UringEngine> engine(new UringEngine());
  io_uring_params params{};
  // Completions are reaped by the submitting thread itself, so the kernel
  // need not interrupt it to run completion work (COOP_TASKRUN). Not
  // SINGLE_ISSUER: the ring is made on the main thread and used on the
  // core's. The completion queue is sized for sockets too.
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &engine->ring_, &params);
  if (rc == -EINVAL) {  // an older kernel without those flags
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &engine->ring_, &params);
  }
  if (rc < 0)
    return make_error(std::string("io_uring_queue_init: ") + std::strerror(-rc), -rc);
  engine->ring_ready_ = true;
  engine->wake_fd_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!engine->wake_fd_.valid())
    return make_error(std::string("eventfd: ") + std::strerror(errno), errno);
  engine->arm_wakeup();
  return engine;
}

UringEngine::~UringEngine() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

Status UringEngine::register_buffers(const iovec& region) {
  int rc = io_uring_register_buffers(&ring_, &region, 1);
  if (rc < 0) {
    // Without registration the buffers still work, as ordinary memory.
    spdlog::warn("io_uring_register_buffers: {}; buffers are not fixed",
                 std::strerror(-rc));
    return ok_status();
  }
  buffers_registered_ = true;
  return ok_status();
}

void UringEngine::attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device) {
  devices_[mdisk_id] = std::move(device);
}

void UringEngine::detach(uint32_t mdisk_id) { devices_.erase(mdisk_id); }

io_uring_sqe* UringEngine::next_sqe() {
  for (;;) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
      ++unsubmitted_;
      return sqe;
    }
    push();  // the submission queue is full: hand it over
    dispatch();
  }
}

io_uring_sqe* UringEngine::sqe_for(RingHandler* handler) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(handler) | kTagHandler);
  return sqe;
}

void UringEngine::push() {
  if (unsubmitted_ == 0) return;
  for (;;) {
    int rc = io_uring_submit(&ring_);
    ++stats_.enters;
    if (rc >= 0) {
      unsubmitted_ = 0;
      return;
    }
    if (rc == -EINTR) continue;
    if (rc == -EAGAIN || rc == -EBUSY) {  // completions backed up: reap first
      dispatch();
      continue;
    }
    spdlog::critical("io_uring_submit failed: {}", std::strerror(-rc));
    std::abort();
  }
}

void UringEngine::arm_wakeup() {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, kTagWake);
}

void UringEngine::wake() {
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

unsigned UringEngine::poll() {
  push();
  return dispatch();
}

void UringEngine::wait() {
  for (;;) {
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc >= 0) {
      unsubmitted_ = 0;
      break;
    }
    if (rc == -EINTR) continue;
    if (rc == -EAGAIN || rc == -EBUSY) break;
    spdlog::critical("io_uring_submit_and_wait failed: {}", std::strerror(-rc));
    std::abort();
  }
  dispatch();
}

unsigned UringEngine::dispatch() {
  unsigned total = 0;
  for (;;) {
    io_uring_cqe* cqes[64];
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
    if (n == 0) return total;
    // Copy out and advance first: handlers queue new work on this ring.
    uint64_t data[64];
    int res[64];
    for (unsigned i = 0; i < n; ++i) {
      data[i] = io_uring_cqe_get_data64(cqes[i]);
      res[i] = cqes[i]->res;
    }
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) {
      uint64_t tag = data[i] & kTagMask;
      void* ptr = reinterpret_cast<void*>(data[i] & ~kTagMask);
      switch (tag) {
        case kTagBlock:
        case kTagLinkHead:
          on_block_cqe(static_cast<IoRequest*>(ptr), tag == kTagLinkHead, res[i]);
          break;
        case kTagHandler:
          static_cast<RingHandler*>(ptr)->on_ring_complete(res[i]);
          break;
        case kTagWake:
          wake_pending_.store(false, std::memory_order_release);
          arm_wakeup();
          break;
      }
    }
    total += n;
  }
}

// Reads and writes go to the kernel one operation per buffer segment the
// request covers, on the registered buffer when there is one.
void UringEngine::prep_rw(IoRequestPtr& request, const BlockDevice& dev, uint64_t token) {
  IoRequest& r = *request;
  iovec parts[Buffer::kMaxSegments];
  int n = r.buffer->slice(r.buffer_offset, r.length, parts, Buffer::kMaxSegments);
  bool fixed = buffers_registered_ && r.buffer->fixed_index() >= 0;
  uint64_t offset = r.offset;
  r.ring_pending = static_cast<uint32_t>(n);
  r.ring_bytes = 0;
  for (int i = 0; i < n; ++i) {
    auto* mem = static_cast<char*>(parts[i].iov_base);
    auto len = static_cast<unsigned>(parts[i].iov_len);
    bool direct = dev.can_go_direct(offset, len, mem);
    if (!direct) ++stats_.buffered_fallbacks;
    int fd = direct ? dev.direct_fd() : dev.buffered_fd();
    io_uring_sqe* sqe = next_sqe();
    if (fixed) {
      ++stats_.fixed_buffer_ops;
      if (r.op == IoOp::read)
        io_uring_prep_read_fixed(sqe, fd, mem, len, offset, r.buffer->fixed_index());
      else
        io_uring_prep_write_fixed(sqe, fd, mem, len, offset, r.buffer->fixed_index());
    } else if (r.op == IoOp::read) {
      io_uring_prep_read(sqe, fd, mem, len, offset);
    } else {
      io_uring_prep_write(sqe, fd, mem, len, offset);
    }
    if (r.op == IoOp::write && (r.flags & io_flags::fua)) sqe->rw_flags = RWF_DSYNC;
    io_uring_sqe_set_data64(sqe, token);
    offset += len;
  }
}

// Trim and write-zeroes through fallocate. Block devices only accept ranges
// aligned to their logical block size; a trim is a hint, so it shrinks to the
// aligned inside, while an unaligned write-zeroes becomes a write of zeroes
// (a rare path, and the one place the back end allocates a buffer).
bool UringEngine::prep_zeroing(IoRequest& r, const BlockDevice& dev, bool punch) {
  if (!dev.is_block_device()) return true;
  uint64_t align = dev.direct_align();
  uint64_t start = (r.offset + align - 1) / align * align;
  uint64_t end = (r.offset + r.length) / align * align;
  bool aligned = start == r.offset && end == r.offset + r.length;
  if (aligned) return true;
  if (punch) {
    r.offset = start;
    r.length = end > start ? end - start : 0;
    return true;
  }
  r.op = IoOp::write;
  r.buffer = Buffer::allocate(r.length);
  r.buffer_offset = 0;
  std::memset(r.buffer->data(), 0, r.length);
  return false;
}

// Memory and null mdisks: the device's own work is a copy (memory) or
// nothing (null); either way the request completes here and now.
void UringEngine::serve_synthetic(IoRequestPtr request, const BlockDevice& dev) {
  IoRequest& r = *request;
  ++stats_.inline_completions;
  ++stats_.submitted;
  ++stats_.completed;
  if (r.op != IoOp::flush && r.offset + r.length > dev.size_bytes()) {
    ++stats_.errors;
    complete(std::move(request), EIO);
    return;
  }
  char* mem = dev.memory();
  switch (r.op) {
    case IoOp::read:
    case IoOp::write: {
      iovec parts[Buffer::kMaxSegments];
      int n = r.buffer->slice(r.buffer_offset, r.length, parts, Buffer::kMaxSegments);
      uint64_t offset = r.offset;
      for (int i = 0; i < n; ++i) {
        if (r.op == IoOp::read) {
          if (mem) std::memcpy(parts[i].iov_base, mem + offset, parts[i].iov_len);
          else std::memset(parts[i].iov_base, 0, parts[i].iov_len);
        } else if (mem) {
          std::memcpy(mem + offset, parts[i].iov_base, parts[i].iov_len);
        }
        if (mem) PayloadCopies::device_bytes.fetch_add(parts[i].iov_len, std::memory_order_relaxed);
        offset += parts[i].iov_len;
      }
      break;
    }
    case IoOp::trim:
    case IoOp::write_zeroes:
      if (mem) std::memset(mem + r.offset, 0, r.length);
      break;
    case IoOp::flush:
      break;
  }
  complete(std::move(request), 0);
}

void UringEngine::submit(IoRequestPtr request) {
  auto it = devices_.find(request->volume);
  if (it == devices_.end()) {
    ++stats_.errors;
    complete(std::move(request), EIO);
    return;
  }
  const BlockDevice& dev = *it->second;
  if (dev.kind() != DeviceKind::file) {
    serve_synthetic(std::move(request), dev);
    return;
  }
  IoRequest& r = *request;
  if (r.op == IoOp::trim) {
    prep_zeroing(r, dev, true);
    if (r.length == 0) {  // nothing aligned to discard: a trim is only a hint
      complete(std::move(request), 0);
      return;
    }
  } else if (r.op == IoOp::write_zeroes) {
    prep_zeroing(r, dev, !(r.flags & io_flags::no_hole));
  }

  ++in_flight_;
  ++stats_.submitted;
  uint64_t token = reinterpret_cast<uint64_t>(request.get());
  if (r.op == IoOp::read || r.op == IoOp::write) {
    if (r.length == 0) {
      --in_flight_;
      ++stats_.completed;
      complete(std::move(request), 0);
      return;
    }
    prep_rw(request, dev, token | kTagBlock);
    request.detach();  // the ring holds the reference until the last completion
    return;
  }
  r.ring_pending = 1;
  r.ring_bytes = 0;
  bool fua_link = false;
  io_uring_sqe* sqe = next_sqe();
  switch (r.op) {
    case IoOp::flush:
      io_uring_prep_fsync(sqe, dev.buffered_fd(), 0);
      break;
    case IoOp::trim:
      io_uring_prep_fallocate(sqe, dev.buffered_fd(),
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.offset, r.length);
      fua_link = r.flags & io_flags::fua;
      break;
    case IoOp::write_zeroes: {
      int mode = (r.flags & io_flags::no_hole) ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
      io_uring_prep_fallocate(sqe, dev.buffered_fd(), mode | FALLOC_FL_KEEP_SIZE, r.offset,
                              r.length);
      fua_link = r.flags & io_flags::fua;
      break;
    }
    default:  // reads and writes were handled above
      break;
  }
  request.detach();
  if (fua_link) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, token | kTagLinkHead);
    io_uring_sqe* sync = next_sqe();
    io_uring_prep_fsync(sync, dev.buffered_fd(), IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sync, token | kTagBlock);
  } else {
    io_uring_sqe_set_data64(sqe, token | kTagBlock);
  }
}

void UringEngine::on_block_cqe(IoRequest* raw, bool link_head, int res) {
  if (link_head) {  // its fsync completes the request
    if (res < 0) raw->status = map_result_errno(res);
    return;
  }
  if (res < 0) {
    if (raw->status == 0) raw->status = map_result_errno(res);
  } else {
    raw->ring_bytes += static_cast<uint64_t>(res);
  }
  if (--raw->ring_pending > 0) return;
  IoRequestPtr request(raw, /*add_ref=*/false);
  int status = request->status;  // an error of a linked head or a segment wins
  bool moves_data = request->op == IoOp::read || request->op == IoOp::write;
  if (status == 0 && moves_data && request->ring_bytes != request->length) {
    spdlog::error("short {} on mdisk {} at {}: {} of {} bytes", to_string(request->op),
                  request->volume, request->offset, request->ring_bytes, request->length);
    status = EIO;
  }
  if (status != 0) ++stats_.errors;
  ++stats_.completed;
  --in_flight_;
  complete(std::move(request), status);
}

}  // namespace sve

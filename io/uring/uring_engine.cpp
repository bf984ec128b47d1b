#include "io/uring/uring_engine.hpp"

#include <linux/falloc.h>
#include <sched.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sve {
namespace {

// user_data values. A request pointer is at least 8-byte aligned, so the low
// bit marks the head of a linked pair (operation + durability fsync): its
// completion only records an error, the tail completes the request.
constexpr uint64_t kStopToken = 1;
constexpr uint64_t kLinkHeadBit = 2;

int map_result_errno(int res) {
  int err = -res;
  return err == 0 ? EIO : err;
}

}  // namespace

Result<std::unique_ptr<UringEngine>> UringEngine::create(unsigned entries) {
  std::unique_ptr<UringEngine> engine(new UringEngine());
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &engine->ring_, &params);
  if (rc < 0)
    return make_error(std::string("io_uring_queue_init: ") + std::strerror(-rc), -rc);
  engine->ring_ready_ = true;
  engine->reaper_ = std::thread([e = engine.get()] { e->reap_loop(); });
  return engine;
}

UringEngine::~UringEngine() {
  if (!ring_ready_) return;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, kStopToken);
  push();
  if (reaper_.joinable()) reaper_.join();
  io_uring_queue_exit(&ring_);
}

void UringEngine::attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device) {
  devices_[mdisk_id] = std::move(device);
}

void UringEngine::detach(uint32_t mdisk_id) { devices_.erase(mdisk_id); }

UringStats UringEngine::stats() const {
  return {submitted_.load(), completed_.load(), errors_.load(), buffered_.load()};
}

io_uring_sqe* UringEngine::next_sqe() {
  for (;;) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    push();  // the ring is full of unsubmitted entries: hand them over
  }
}

void UringEngine::push() {
  for (;;) {
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) return;
    if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) {
      // The completion queue is backed up; the reaper drains it.
      sched_yield();
      continue;
    }
    spdlog::critical("io_uring_submit failed: {}", std::strerror(-rc));
    std::abort();
  }
}

void UringEngine::prep_rw(io_uring_sqe* sqe, IoRequest& r, const BlockDevice& dev) {
  char* mem = r.data();
  bool direct = dev.can_go_direct(r.offset, r.length, mem);
  if (!direct) buffered_.fetch_add(1, std::memory_order_relaxed);
  int fd = direct ? dev.direct_fd() : dev.buffered_fd();
  if (r.op == IoOp::read) {
    io_uring_prep_read(sqe, fd, mem, static_cast<unsigned>(r.length), r.offset);
  } else {
    io_uring_prep_write(sqe, fd, mem, static_cast<unsigned>(r.length), r.offset);
    if (r.flags & io_flags::fua) sqe->rw_flags = RWF_DSYNC;
  }
}

// Trim and write-zeroes through fallocate. Block devices only accept ranges
// aligned to their logical block size; a trim is a hint, so it shrinks to the
// aligned inside, while an unaligned write-zeroes becomes a write of zeroes.
// Returns false when the request was turned into something else.
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

void UringEngine::submit(IoRequestPtr request) {
  auto it = devices_.find(request->volume);
  if (it == devices_.end()) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    complete(std::move(request), EIO);
    return;
  }
  const BlockDevice& dev = *it->second;
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

  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  submitted_.fetch_add(1, std::memory_order_relaxed);
  uint64_t token = reinterpret_cast<uint64_t>(request.get());
  bool fua_link = false;
  io_uring_sqe* sqe = next_sqe();
  switch (r.op) {
    case IoOp::read:
    case IoOp::write:
      prep_rw(sqe, r, dev);
      break;
    case IoOp::flush:
      io_uring_prep_fsync(sqe, dev.buffered_fd(), 0);
      break;
    case IoOp::trim:
      io_uring_prep_fallocate(sqe, dev.buffered_fd(),
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              r.offset, r.length);
      fua_link = r.flags & io_flags::fua;
      break;
    case IoOp::write_zeroes: {
      int mode = (r.flags & io_flags::no_hole) ? FALLOC_FL_ZERO_RANGE
                                               : FALLOC_FL_PUNCH_HOLE;
      io_uring_prep_fallocate(sqe, dev.buffered_fd(), mode | FALLOC_FL_KEEP_SIZE,
                              r.offset, r.length);
      fua_link = r.flags & io_flags::fua;
      break;
    }
  }
  request.detach();  // the ring holds the reference until the completion
  if (fua_link) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, token | kLinkHeadBit);
    io_uring_sqe* sync = next_sqe();
    io_uring_prep_fsync(sync, dev.buffered_fd(), IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sync, token);
  } else {
    io_uring_sqe_set_data64(sqe, token);
  }
  push();
}

void UringEngine::on_cqe(uint64_t user_data, int res) {
  auto* raw = reinterpret_cast<IoRequest*>(user_data & ~uint64_t{3});
  if (user_data & kLinkHeadBit) {
    if (res < 0) raw->status = map_result_errno(res);
    return;
  }
  IoRequestPtr request(raw, /*add_ref=*/false);
  int status = request->status;  // an error of a linked head wins
  if (status == 0 && res < 0) status = map_result_errno(res);
  if (status == 0 && (request->op == IoOp::read || request->op == IoOp::write) &&
      static_cast<uint64_t>(res) != request->length) {
    spdlog::error("short {} on mdisk {} at {}: {} of {} bytes",
                  to_string(request->op), request->volume, request->offset, res,
                  request->length);
    status = EIO;
  }
  if (status != 0) errors_.fetch_add(1, std::memory_order_relaxed);
  completed_.fetch_add(1, std::memory_order_relaxed);
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  complete(std::move(request), status);
}

void UringEngine::reap_loop() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {
      spdlog::critical("io_uring_wait_cqe failed: {}", std::strerror(-rc));
      std::abort();
    }
    unsigned head = 0, seen = 0;
    bool stop = false;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      uint64_t data = io_uring_cqe_get_data64(cqe);
      int res = cqe->res;
      ++seen;
      if (data == kStopToken) {
        stop = true;
        continue;
      }
      on_cqe(data, res);
    }
    io_uring_cq_advance(&ring_, seen);
    if (stop) return;
  }
}

}  // namespace sve

#include "io/uring/uring_engine.hpp"

#include <chrono>

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

}  // namespace

Result<std::unique_ptr<UringEngine>> UringEngine::create(unsigned entries) {
  std::unique_ptr<UringEngine> engine(new UringEngine());
  io_uring_params params{};
  // Completions are reaped by the submitting thread itself, so the kernel
  // need not interrupt it to run completion work (COOP_TASKRUN). That work
  // (a socket's receive or send finishing, say) then waits until the
  // thread next enters the kernel, which a reactor busy with its queues and
  // polls may not do before a timer tick: so the kernel also raises a flag
  // when work waits (TASKRUN_FLAG), and liburing's peek at an empty
  // completion queue enters the kernel to run it. Without it a mirrored
  // write's answer sat in the kernel while the owner's core was busy or
  // polling, and two nodes' cores took turns instead of working at once.
  // Not SINGLE_ISSUER: the ring is made on the main thread and used on the
  // core's. The completion queue is sized for sockets too.
  const unsigned tries[] = {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                            IORING_SETUP_COOP_TASKRUN, 0};  // older kernels
  int rc = -EINVAL;
  for (unsigned extra : tries) {
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE | extra;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &engine->ring_, &params);
    if (rc != -EINVAL) break;
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
  region_ = region;
  return ok_status();
}

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

io_uring_sqe* UringEngine::block_sqe(IoRequest* request, bool link_head) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_sqe_set_data64(sqe,
                          reinterpret_cast<uint64_t>(request) | (link_head ? kTagLinkHead : kTagBlock));
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
          block_completions_->on_block_complete(static_cast<IoRequest*>(ptr),
                                                tag == kTagLinkHead, res[i]);
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

}  // namespace sve

#pragma once
// A core's kernel interface: one io_uring ring for that core's block I/O and
// its host sockets. Seastar's reactor backend in three calls: queue work
// (sqe_for, block_sqe), reap completions (poll), sleep until something
// happens (wait). The core's reactor thread is its only user; wake() is the
// one call other threads may make.
//
// The ring knows no devices: the block back end (backend/) prepares block
// operations on it and receives their completions. Buffers from the core's
// BufferPool go to the kernel as fixed (registered) buffers.
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include <liburing.h>

#include "io/protocol.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve {

// The completion target of a ring operation other than block I/O (a socket
// receive, a send). Must stay alive until its completion arrives.
class RingHandler {
 public:
  virtual ~RingHandler() = default;
  virtual void on_ring_complete(int res) = 0;
};

// Where block operations complete: one per ring (the core's back end). A
// block operation carries its request, so no handler object is needed per
// request. `link_head`: the operation was linked before an fsync that will
// complete too.
class BlockCompletions {
 public:
  virtual ~BlockCompletions() = default;
  virtual void on_block_complete(IoRequest* request, bool link_head, int res) = 0;
};

struct RingStats {
  uint64_t enters = 0;  // io_uring_enter calls for submission
};

class UringEngine final {
 public:
  static Result<std::unique_ptr<UringEngine>> create(unsigned entries = 1024);
  ~UringEngine();

  // Registers `region` as fixed buffer 0. Once, before any I/O.
  Status register_buffers(const iovec& region);
  bool buffers_registered() const { return buffers_registered_; }
  // Whether [p, p + length) lies in this ring's registered region (a buffer
  // of another core's pool does not: it goes as ordinary memory).
  bool registered(const void* p, size_t length) const {
    auto* a = static_cast<const char*>(p);
    auto* base = static_cast<const char*>(region_.iov_base);
    return buffers_registered_ && a >= base && a + length <= base + region_.iov_len;
  }

  // An SQE whose completion goes to `handler`; the caller fills it in.
  io_uring_sqe* sqe_for(RingHandler* handler);
  // An SQE for a block operation of `request`, whose completion goes to the
  // block completions set here. The caller fills it in (io_uring_prep_*
  // leaves the completion target alone).
  void set_block_completions(BlockCompletions* to) { block_completions_ = to; }
  io_uring_sqe* block_sqe(IoRequest* request, bool link_head = false);

  // Hands queued SQEs to the kernel and dispatches every completion that is
  // ready. Returns the number of completions dispatched.
  unsigned poll();
  // Sleeps until a completion or a wake() arrives, then dispatches.
  void wait();
  // Any thread: ends a wait() now or the next one.
  void wake();

  const RingStats& stats() const { return stats_; }

 private:
  UringEngine() = default;
  io_uring_sqe* next_sqe();
  void push();
  unsigned dispatch();
  void arm_wakeup();

  io_uring ring_{};
  bool ring_ready_ = false;
  bool buffers_registered_ = false;
  iovec region_{};
  UniqueFd wake_fd_;
  uint64_t wake_value_ = 0;
  std::atomic<bool> wake_pending_{false};
  unsigned unsubmitted_ = 0;
  BlockCompletions* block_completions_ = nullptr;
  RingStats stats_;
};

}  // namespace sve

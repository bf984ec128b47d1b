#pragma once
// A core's kernel interface: one io_uring ring for that core's block I/O and
// its host sockets. Seastar's reactor backend in three calls: queue work
// (submit, sqe_for), reap completions (poll), sleep until something happens
// (wait). The core's reactor thread is its only user; wake() is the one call
// other threads may make.
//
// Block requests name an mdisk (request->volume). Memory and null mdisks are
// served inline, without the ring. Buffers from the core's BufferPool go to
// the kernel as fixed (registered) buffers.
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include <liburing.h>

#include <deque>

#include "hw/device/block_device.hpp"
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

struct UringStats {
  uint64_t submitted = 0;           // block requests
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t buffered_fallbacks = 0;  // unaligned requests on the page cache
  uint64_t fixed_buffer_ops = 0;    // operations on registered memory
  uint64_t inline_completions = 0;  // memory and null mdisks
  uint64_t enters = 0;              // io_uring_enter calls for submission
};

class UringEngine final : public IoServer {
 public:
  static Result<std::unique_ptr<UringEngine>> create(unsigned entries = 1024);
  ~UringEngine() override;

  // Registers `region` as fixed buffer 0. Once, before any I/O.
  Status register_buffers(const iovec& region);

  void attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device);
  void detach(uint32_t mdisk_id);

  // request->volume names an mdisk; offset is relative to the device start.
  void submit(IoRequestPtr request) override;

  // An SQE whose completion goes to `handler`; the caller fills it in.
  io_uring_sqe* sqe_for(RingHandler* handler);

  // Hands queued SQEs to the kernel and dispatches every completion that is
  // ready. Returns the number of completions dispatched.
  unsigned poll();
  // Sleeps until a completion or a wake() arrives, then dispatches.
  void wait();
  // Any thread: ends a wait() now or the next one.
  void wake();

  uint64_t in_flight() const { return in_flight_; }
  const UringStats& stats() const { return stats_; }

 private:
  UringEngine() = default;
  io_uring_sqe* next_sqe();
  void push();
  unsigned dispatch();
  void arm_wakeup();
  void on_block_cqe(IoRequest* raw, bool link_head, int res);
  void prep_rw(IoRequestPtr& request, const BlockDevice& dev, uint64_t token);
  void serve_synthetic(IoRequestPtr request, const BlockDevice& dev);
  bool prep_zeroing(IoRequest& r, const BlockDevice& dev, bool punch);


  io_uring ring_{};
  bool ring_ready_ = false;
  bool buffers_registered_ = false;
  UniqueFd wake_fd_;
  uint64_t wake_value_ = 0;
  std::atomic<bool> wake_pending_{false};
  unsigned unsubmitted_ = 0;
  std::unordered_map<uint32_t, std::shared_ptr<BlockDevice>> devices_;
  uint64_t in_flight_ = 0;
  UringStats stats_;
};

}  // namespace sve

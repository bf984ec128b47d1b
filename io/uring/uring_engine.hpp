#pragma once
// The back end's kernel interface: one io_uring ring, the mdisks it serves,
// and a reaper that completes finished requests back to their clients.
//
// Threading contract: attach, detach and submit are called by one owner
// thread (the per-core I/O actor); the reaper thread only reads completions.
// liburing allows exactly this split: one producer of submissions, one
// consumer of completions.
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <unordered_map>

#include <liburing.h>

#include "hw/device/block_device.hpp"
#include "io/protocol.hpp"
#include "util/result.hpp"

namespace sve {

struct UringStats {
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t buffered_fallbacks = 0;  // unaligned requests on the page cache
};

class UringEngine final : public IoServer {
 public:
  static Result<std::unique_ptr<UringEngine>> create(unsigned entries = 512);
  ~UringEngine() override;

  void attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device);
  void detach(uint32_t mdisk_id);

  // request->volume names an mdisk; offset is relative to the device start.
  void submit(IoRequestPtr request) override;

  uint64_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }
  UringStats stats() const;

 private:
  UringEngine() = default;
  io_uring_sqe* next_sqe();
  void push();
  void reap_loop();
  void on_cqe(uint64_t user_data, int res);
  void prep_rw(io_uring_sqe* sqe, IoRequest& r, const BlockDevice& dev);
  bool prep_zeroing(IoRequest& r, const BlockDevice& dev, bool punch);

  io_uring ring_{};
  bool ring_ready_ = false;
  std::thread reaper_;
  std::unordered_map<uint32_t, std::shared_ptr<BlockDevice>> devices_;
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> submitted_{0}, completed_{0}, errors_{0}, buffered_{0};
};

}  // namespace sve

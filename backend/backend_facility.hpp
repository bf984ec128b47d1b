#pragma once
// The back end of a core's stack: the block devices (mdisks) attached to
// the core, and the one submitter of block I/O to them. File and block
// device mdisks go through the core's io_uring ring (one operation per
// buffer segment, on registered memory where the buffer is; trim and
// write-zeroes through fallocate); memory and null mdisks are served here
// and now, without the ring. Completions are reaped by the core's reactor
// and go straight back to the facility that sent each request, not through
// this one's caller.
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>

#include "facility/facility.hpp"
#include "hw/device/block_device.hpp"
#include "io/uring/uring_engine.hpp"

namespace sve {

struct BackendStats {
  uint64_t submitted = 0;           // block requests
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t buffered_fallbacks = 0;  // unaligned requests on the page cache
  uint64_t fixed_buffer_ops = 0;    // operations on registered memory
  uint64_t inline_completions = 0;  // memory and null mdisks
  uint64_t fenced = 0;              // changes refused: the node's lease ran out
  uint64_t held = 0;                // changes held after the I/O process started
};

// How long a new I/O process holds its changes to the back end: writes of
// the process before it may still be in the device queue (its death does
// not recall them), and one landing after this process wrote the same
// blocks would undo that write (a destage of a recovered dirty block, say).
// The same margin the lease wait gives a node that lost its lease (15% of
// the default 3 s lease).
inline constexpr uint64_t kRestartQuietMs = 500;

class ServiceGate;

class BackendFacility final : public Facility, private BlockCompletions {
 public:
  // Takes the ring's block completions.
  explicit BackendFacility(UringEngine& ring);
  ~BackendFacility() override;

  const char* kind() const override { return "backend"; }
  const char* role() const override { return "I/O"; }

  // In a cluster, the node's lease: once it has run out, a request that
  // would change an mdisk fails (EIO) instead of reaching it
  // (ServiceGate::may_write_back_end). Null: never fenced.
  void set_fence(const ServiceGate* lease) { fence_ = lease; }
  // Changes (writes, write-zeroes, trims) submitted before `until_ms`
  // (monotonic) wait until then, in order; reads and flushes go on.
  void hold_changes_until(uint64_t until_ms) { hold_until_ = until_ms; }
  // (A tick releases what was held; a slow one once that is done.)
  uint64_t tick_ms() const override { return hold_until_ ? 10 : 1000; }
  void tick(uint64_t now_ms) override;
  void attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device);
  void detach(uint32_t mdisk_id);

  // request->volume names an mdisk; offset is relative to the device start.
  void submit(IoRequestPtr request) override;

  uint64_t in_flight() const { return in_flight_; }
  const BackendStats& stats() const { return stats_; }
  nlohmann::json inspect() const override;

 private:
  void on_block_complete(IoRequest* request, bool link_head, int res) override;
  void prep_rw(IoRequest& request, const BlockDevice& dev);
  bool prep_zeroing(IoRequest& r, const BlockDevice& dev, bool punch);
  // Whether `r` is zeroed without zeros being written (by SVE or the
  // kernel): what a host's fast-zero request asks.
  static bool zeroes_without_writing(const BlockDevice& dev, bool punch);
  void serve_synthetic(IoRequestPtr request, const BlockDevice& dev);

  UringEngine& ring_;
  std::unordered_map<uint32_t, std::shared_ptr<BlockDevice>> devices_;
  const ServiceGate* fence_ = nullptr;
  uint64_t hold_until_ = 0;
  std::deque<IoRequestPtr> held_;
  uint64_t in_flight_ = 0;
  BackendStats stats_;
};

}  // namespace sve

#pragma once
// Faults an mdisk can be told to show, for the chaos monkey: for a while
// every request to it fails with EIO, or waits (a stalled device). Shared by
// every core's ring; the monkey sets them from its own thread. Costs one
// relaxed load per request while none is set.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>

namespace sve {

class MdiskFaults {
 public:
  enum class Kind { none, error, stall };
  struct Verdict {
    Kind kind = Kind::none;
    uint64_t until_ms = 0;  // monotonic (steady clock) milliseconds
  };

  void set(uint32_t mdisk, Kind kind, uint64_t until_ms);
  void clear();
  Verdict check(uint32_t mdisk, uint64_t now_ms) const;

 private:
  mutable std::mutex mu_;
  std::map<uint32_t, Verdict> faults_;
  std::atomic<bool> any_{false};
};

}  // namespace sve

#pragma once
// Whether this node may serve host I/O now. A node alone serves always; a
// cluster node only while its lease is valid: the cluster actor moves the
// deadline forward as leases are renewed, and the data path compares it
// with the clock on every request, so that a node whose lease has run out
// stops at once, not at the next tick (the split-brain guarantee).
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>

namespace sve {

inline uint64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

class ServiceGate {
 public:
  static constexpr uint64_t kForever = std::numeric_limits<uint64_t>::max();

  // `deadline_ms` on the monotonic clock; 0 closes the gate. `why` says
  // what a host is told while it is closed.
  void open_until(uint64_t deadline_ms, std::string why) {
    set_why(std::move(why));
    open_until(deadline_ms);
  }
  // Moves the deadline, keeping what hosts are told.
  // Release / acquire: whoever sees the gate open also sees what was
  // published to the data path before it opened (the vdisks' owners).
  void open_until(uint64_t deadline_ms) {
    if (deadline_ms == 0) {
      // Closed since now, or since the lease it had ran out, or since it
      // was closed already.
      uint64_t was = until_.load(std::memory_order_acquire), now = monotonic_ms();
      closed_at_.store(was == 0 ? closed_at_.load(std::memory_order_relaxed)
                       : was == kForever ? now
                                         : std::min(was, now),
                       std::memory_order_relaxed);
    }
    until_.store(deadline_ms, std::memory_order_release);
    if (deadline_ms == 0 || deadline_ms == kForever) return;
    uint64_t was = lease_until_.load(std::memory_order_relaxed);
    while ((was == kForever || was < deadline_ms) &&
           !lease_until_.compare_exchange_weak(was, deadline_ms, std::memory_order_release)) {
    }
  }
  void set_why(std::string why) {
    std::lock_guard lock(mu_);
    why_ = std::move(why);
  }
  bool open() const {
    uint64_t until = until_.load(std::memory_order_acquire);
    return until == kForever || (until != 0 && monotonic_ms() < until);
  }
  // How long the gate has been closed, in ms (0 while it is open): a
  // node between two generations is closed for a few round trips, one
  // whose lease ran out for good stays closed (what an iSCSI port tells
  // hosts about its state depends on which it looks like).
  uint64_t closed_for_ms() const {
    uint64_t until = until_.load(std::memory_order_acquire), now = monotonic_ms();
    if (until == kForever || (until != 0 && now < until)) return 0;
    uint64_t since = until == 0 ? closed_at_.load(std::memory_order_relaxed) : until;
    return now > since ? now - since : 0;
  }
  // Whether this node may still change its back end: until the latest
  // lease it was granted runs out (the gate may close before, for a
  // moment, at a new generation: the other nodes honour the lease all the
  // same). Once it has run out, another node may own what this one
  // served, and a write this one still had queued (a stalled device, a
  // destage behind it) would land over the new owner's. A node never
  // granted a lease (alone, or not yet in a cluster) is not fenced.
  bool may_write_back_end() const {
    uint64_t until = lease_until_.load(std::memory_order_acquire);
    return until == kForever || monotonic_ms() < until;
  }
  std::string why_closed() const {
    std::lock_guard lock(mu_);
    return why_.empty() ? "this node is not serving I/O now" : why_;
  }

 private:
  std::atomic<uint64_t> until_{kForever};
  std::atomic<uint64_t> lease_until_{kForever};  // the latest finite deadline
  std::atomic<uint64_t> closed_at_{0};  // when it was last closed by open_until(0)
  mutable std::mutex mu_;
  std::string why_;
};

}  // namespace sve

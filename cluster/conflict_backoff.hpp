#pragma once
// Optimistic configuration changes race: each is valid only on top of the
// model it was made from, and the boss's own node learns of every commit
// first, so it wins every tie. Redoing at once lets that node starve the
// others; a randomised, growing pause before each redo spreads the
// contenders out, as Ethernet does after a collision.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>

namespace sve {

class ConflictBackoff {
 public:
  // Gives up after `budget` of redoing (the command then fails, unapplied).
  explicit ConflictBackoff(std::chrono::milliseconds budget = std::chrono::seconds(20))
      : deadline_(std::chrono::steady_clock::now() + budget), rng_(std::random_device{}()) {}

  // Pauses before the next redo; false once the budget is spent.
  bool pause() {
    if (std::chrono::steady_clock::now() >= deadline_) return false;
    uint32_t cap_ms = std::min<uint32_t>(1u << std::min(attempts_, 6u), 64);
    ++attempts_;
    std::uniform_int_distribution<uint32_t> pick(0, cap_ms * 1000);
    std::this_thread::sleep_for(std::chrono::microseconds(pick(rng_)));
    return true;
  }
  uint32_t attempts() const { return attempts_; }

 private:
  std::chrono::steady_clock::time_point deadline_;
  std::mt19937 rng_;
  uint32_t attempts_ = 0;
};

}  // namespace sve

#pragma once
// The watchdog between a node's two processes. The I/O process feeds it
// through a pipe whenever every core of its data path has answered; the
// configuration process watches the other end and judges the I/O process
// hung when no feed came within the limit (or dead when the pipe closes).
// The stand-in for the hardware watchdog of the paper's nodes.
#include <cstdint>

#include "util/fd.hpp"

namespace sve {

// The I/O process's end.
class WatchdogFeed {
 public:
  WatchdogFeed() = default;
  explicit WatchdogFeed(int fd) : fd_(fd) {}
  bool attached() const { return fd_.valid(); }
  void ready() { send('R'); }  // the node serves
  void feed() { send('K'); }   // every core answered

 private:
  void send(char what);
  UniqueFd fd_;
};

// The configuration process's end.
class WatchdogMonitor {
 public:
  enum class Event { quiet, ready, fed, closed, expired };

  // `limit_ms`: how long a serving I/O process may go without feeding it;
  // `start_limit_ms`: how long one may take to start serving.
  WatchdogMonitor(UniqueFd read_end, uint64_t limit_ms, uint64_t start_limit_ms);

  // Waits at most `wait_ms` for the I/O process; reports what happened.
  Event wait(int wait_ms);
  bool is_ready() const { return ready_; }
  uint64_t silent_ms() const;

 private:
  UniqueFd fd_;
  uint64_t limit_ms_, start_limit_ms_;
  uint64_t last_heard_ms_, last_woke_ms_;
  bool ready_ = false;
};

uint64_t watchdog_clock_ms();

}  // namespace sve

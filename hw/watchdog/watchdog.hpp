#pragma once
// The watchdog between a node's two processes. The I/O process feeds it
// through a pipe whenever every core of its data path has answered; the
// configuration process watches the other end and judges the I/O process
// hung when no feed came within the limit (or dead when the pipe closes).
// The stand-in for the hardware watchdog of the paper's nodes.
#include <cstdint>
#include <string>

#include "util/fd.hpp"

namespace sve {

// The I/O process's end.
class WatchdogFeed {
 public:
  WatchdogFeed() = default;
  explicit WatchdogFeed(int fd) : fd_(fd) {}
  bool attached() const { return fd_.valid(); }
  void ready() { send("R"); }  // the node serves
  void feed() { send("K"); }   // every core answered
  // Asks that the next I/O process start only `ms` after this one ends (a
  // node that is to stay down a while, as the chaos monkey's kill-node).
  void hold_down(uint32_t ms) { send("H" + std::to_string(ms) + ";"); }

 private:
  void send(const std::string& what);
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
  uint64_t hold_down_ms() const { return hold_down_ms_; }
  uint64_t silent_ms() const;

 private:
  UniqueFd fd_;
  uint64_t limit_ms_, start_limit_ms_;
  uint64_t last_heard_ms_, last_woke_ms_;
  bool ready_ = false;
  uint64_t hold_down_ms_ = 0;
  bool in_hold_ = false;  // reading "H<ms>;"
  uint64_t hold_value_ = 0;
};

uint64_t watchdog_clock_ms();

}  // namespace sve

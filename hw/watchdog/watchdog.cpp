#include "hw/watchdog/watchdog.hpp"

#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace sve {

uint64_t watchdog_clock_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void WatchdogFeed::send(const std::string& what) {
  if (!fd_.valid()) return;
  // Non-blocking: a configuration process that is slow to read must not
  // stall the node; a full pipe already says it is alive. Writes this
  // small are atomic, so two threads may send.
  while (::write(fd_.get(), what.data(), what.size()) < 0 && errno == EINTR) {
  }
}

WatchdogMonitor::WatchdogMonitor(UniqueFd read_end, uint64_t limit_ms, uint64_t start_limit_ms)
    : fd_(std::move(read_end)), limit_ms_(limit_ms), start_limit_ms_(start_limit_ms) {
  last_heard_ms_ = last_woke_ms_ = watchdog_clock_ms();
}

uint64_t WatchdogMonitor::silent_ms() const { return watchdog_clock_ms() - last_heard_ms_; }

WatchdogMonitor::Event WatchdogMonitor::wait(int wait_ms) {
  pollfd p{fd_.get(), POLLIN, 0};
  int n = ::poll(&p, 1, wait_ms);
  uint64_t now = watchdog_clock_ms();
  // This process was not running for a while (stopped, or starved): it
  // cannot tell whether the I/O process was silent meanwhile, so the
  // count starts again rather than kill a process that may be fine.
  if (now - last_woke_ms_ > static_cast<uint64_t>(wait_ms) + limit_ms_ / 2) last_heard_ms_ = now;
  last_woke_ms_ = now;
  if (n > 0) {
    char buf[256];
    ssize_t got = ::read(fd_.get(), buf, sizeof buf);
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) return Event::closed;
    if (got > 0) {
      last_heard_ms_ = now;
      bool became_ready = false;
      for (ssize_t i = 0; i < got; ++i) {
        char c = buf[i];
        if (in_hold_) {
          if (c >= '0' && c <= '9') hold_value_ = hold_value_ * 10 + static_cast<uint64_t>(c - '0');
          if (c == ';') {
            hold_down_ms_ = hold_value_;
            in_hold_ = false;
          }
          continue;
        }
        in_hold_ = c == 'H';
        hold_value_ = 0;
        became_ready |= c == 'R' && !ready_;
      }
      if (became_ready) {
        ready_ = true;
        return Event::ready;
      }
      return Event::fed;
    }
  }
  if (now - last_heard_ms_ > (ready_ ? limit_ms_ : start_limit_ms_)) return Event::expired;
  return Event::quiet;
}

}  // namespace sve

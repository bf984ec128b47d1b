#pragma once
// The chaos monkey's schedule: from a seed, the same sequence of faults
// every time (kind, when, for how long, which of the candidate targets), so
// that a run that found something can be run again. Plain C++: what the
// faults do to a live node is the chaos actor's business.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace sve {

enum class FaultKind {
  kill_actor,     // a supervised actor (a heartbeat link) is killed
  crash_io,       // the I/O process aborts
  hang_io,        // the I/O process stops (SIGSTOP): the watchdog must notice
  kill_node,      // the I/O process is SIGKILLed: the node is gone until restarted
  net_drop,       // a share of the messages to one peer are lost
  net_delay,      // messages to one peer arrive late
  net_duplicate,  // a share of the messages to one peer arrive twice
  partition,      // this node is cut off from every other
  mdisk_error,    // an mdisk fails every request (EIO)
  mdisk_stall,    // an mdisk answers nothing for a while
  channel_cut,    // the data channel to one peer is cut for a while (copies
                  // take the interconnect actor meanwhile)
  channel_stall,  // this node stops reading its data channel from one peer for a
                  // while: the peer's window fills and its writers wait
  channel_delay,  // this node's data channel frames to one peer leave late
};

const std::vector<FaultKind>& all_fault_kinds();
const char* to_string(FaultKind kind);
std::optional<FaultKind> parse_fault_kind(const std::string& name);
// "crash-io,partition" or "all"; an error names the unknown kind.
std::optional<std::vector<FaultKind>> parse_fault_kinds(const std::string& list,
                                                        std::string& error);
bool kills_process(FaultKind kind);

struct ChaosSettings {
  uint64_t seed = 1;
  std::vector<FaultKind> kinds;
  double rate_per_minute = 6;
};

struct PlannedFault {
  uint64_t number = 0;      // 1, 2, ...
  FaultKind kind{};
  uint64_t gap_ms = 0;      // after the previous fault
  uint32_t duration_ms = 0; // transient faults
  uint32_t target = 0;      // index into the candidates, modulo their count
  uint32_t intensity = 0;   // percent dropped or duplicated, or delay in ms
};

class ChaosPlan {
 public:
  explicit ChaosPlan(ChaosSettings settings);
  // The next fault; `skip(n)` replays n of them (a monkey resumed in a
  // restarted process goes on where it was).
  PlannedFault next();
  void skip(uint64_t n);
  const ChaosSettings& settings() const { return settings_; }

 private:
  ChaosSettings settings_;
  std::mt19937_64 rng_;
  uint64_t number_ = 0;
};

}  // namespace sve

#include "node/chaos/chaos_plan.hpp"

#include <algorithm>
#include <sstream>

namespace sve {

const std::vector<FaultKind>& all_fault_kinds() {
  static const std::vector<FaultKind> kinds = {
      FaultKind::kill_actor, FaultKind::crash_io,      FaultKind::hang_io,
      FaultKind::kill_node,  FaultKind::net_drop,      FaultKind::net_delay,
      FaultKind::net_duplicate, FaultKind::partition, FaultKind::mdisk_error,
      FaultKind::mdisk_stall, FaultKind::channel_cut, FaultKind::channel_stall,
      FaultKind::channel_delay};
  return kinds;
}

const char* to_string(FaultKind kind) {
  switch (kind) {
    case FaultKind::kill_actor: return "kill-actor";
    case FaultKind::crash_io: return "crash-io";
    case FaultKind::hang_io: return "hang-io";
    case FaultKind::kill_node: return "kill-node";
    case FaultKind::net_drop: return "net-drop";
    case FaultKind::net_delay: return "net-delay";
    case FaultKind::net_duplicate: return "net-duplicate";
    case FaultKind::partition: return "partition";
    case FaultKind::mdisk_error: return "mdisk-error";
    case FaultKind::mdisk_stall: return "mdisk-stall";
    case FaultKind::channel_cut: return "channel-cut";
    case FaultKind::channel_stall: return "channel-stall";
    case FaultKind::channel_delay: return "channel-delay";
  }
  return "?";
}

std::optional<FaultKind> parse_fault_kind(const std::string& name) {
  for (FaultKind k : all_fault_kinds())
    if (name == to_string(k)) return k;
  return std::nullopt;
}

std::optional<std::vector<FaultKind>> parse_fault_kinds(const std::string& list,
                                                        std::string& error) {
  if (list.empty() || list == "all") return all_fault_kinds();
  std::vector<FaultKind> out;
  std::istringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    auto k = parse_fault_kind(name);
    if (!k) {
      error = "unknown fault kind '" + name + "' (kinds: all";
      for (FaultKind each : all_fault_kinds()) error += std::string(", ") + to_string(each);
      error += ")";
      return std::nullopt;
    }
    if (std::find(out.begin(), out.end(), *k) == out.end()) out.push_back(*k);
  }
  return out;
}

bool kills_process(FaultKind kind) {
  return kind == FaultKind::crash_io || kind == FaultKind::hang_io ||
         kind == FaultKind::kill_node;
}

ChaosPlan::ChaosPlan(ChaosSettings settings)
    : settings_(std::move(settings)), rng_(settings_.seed) {}

PlannedFault ChaosPlan::next() {
  PlannedFault f;
  f.number = ++number_;
  // Exponential gaps (a Poisson process at the asked rate), kept between a
  // fifth of a second and ten mean gaps.
  double mean_ms = 60000.0 / std::max(0.01, settings_.rate_per_minute);
  std::exponential_distribution<double> gap(1.0 / mean_ms);
  f.gap_ms = static_cast<uint64_t>(std::clamp(gap(rng_), 200.0, 10 * mean_ms));
  std::uniform_int_distribution<size_t> kind(0, settings_.kinds.size() - 1);
  f.kind = settings_.kinds.empty() ? FaultKind::kill_actor : settings_.kinds[kind(rng_)];
  f.duration_ms = std::uniform_int_distribution<uint32_t>(500, 3000)(rng_);
  f.target = std::uniform_int_distribution<uint32_t>(0, 1u << 30)(rng_);
  f.intensity = f.kind == FaultKind::net_delay || f.kind == FaultKind::channel_delay
                    ? std::uniform_int_distribution<uint32_t>(20, 400)(rng_)
                    : std::uniform_int_distribution<uint32_t>(10, 60)(rng_);
  return f;
}

void ChaosPlan::skip(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) next();
}

}  // namespace sve

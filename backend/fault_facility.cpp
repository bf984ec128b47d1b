#include "backend/fault_facility.hpp"

#include <cerrno>

#include "io/service_gate.hpp"

namespace sve {

bool MdiskFaultFacility::intercept(IoRequestPtr& request, uint64_t now_ms) {
  auto verdict = faults_->check(request->volume, now_ms);
  if (verdict.kind == MdiskFaults::Kind::error) {
    ++stats_.failed;
    complete(std::move(request), EIO);
    return true;
  }
  if (verdict.kind != MdiskFaults::Kind::stall) return false;
  held_.push_back(std::move(request));
  return true;
}

void MdiskFaultFacility::submit(IoRequestPtr request) {
  if (intercept(request, monotonic_ms())) return;
  lower_.submit(std::move(request));
}

// Requests held for a stall go on once it ended (or fail, if their mdisk
// has failed meanwhile); the rest wait for the next tick.
void MdiskFaultFacility::tick(uint64_t now_ms) {
  if (held_.empty()) return;
  std::deque<IoRequestPtr> waiting;
  waiting.swap(held_);
  for (auto& r : waiting) {
    if (intercept(r, now_ms)) continue;  // failed now, or still stalled: held again
    ++stats_.stalled;
    lower_.submit(std::move(r));
  }
}

nlohmann::json MdiskFaultFacility::inspect() const {
  return {{"held", held_.size()}, {"failed", stats_.failed}, {"stalled", stats_.stalled}};
}

}  // namespace sve

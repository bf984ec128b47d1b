#include "faults/mdisk_faults.hpp"

namespace sve {

void MdiskFaults::set(uint32_t mdisk, Kind kind, uint64_t until_ms) {
  std::lock_guard lock(mu_);
  faults_[mdisk] = {kind, until_ms};
  any_.store(true, std::memory_order_release);
}

void MdiskFaults::clear() {
  std::lock_guard lock(mu_);
  faults_.clear();
  any_.store(false, std::memory_order_release);
}

MdiskFaults::Verdict MdiskFaults::check(uint32_t mdisk, uint64_t now_ms) const {
  if (!any_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(mu_);
  auto it = faults_.find(mdisk);
  if (it == faults_.end() || it->second.until_ms <= now_ms) return {};
  return it->second;
}

}  // namespace sve

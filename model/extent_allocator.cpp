#include "model/extent_allocator.hpp"

#include <algorithm>
#include <cerrno>

namespace sve {

PoolUsage::PoolUsage(const ClusterModel& config, const PoolConfig& pool)
    : order_(pool.mdisks) {
  for (uint32_t id : pool.mdisks) {
    const MdiskConfig* m = config.find_mdisk(id);
    uint32_t slots = m ? extent_slots(*m, pool.extent_bytes) : 0;
    used_[id].assign(slots, false);
    total_ += slots;
  }
  free_ = total_;
  for (const auto& v : config.vdisks) {
    if (v.pool_id != pool.id) continue;
    for (const auto& e : v.extents) {
      auto it = used_.find(e.mdisk_id);
      if (it != used_.end() && e.index < it->second.size() && !it->second[e.index]) {
        it->second[e.index] = true;
        --free_;
      }
    }
  }
}

uint64_t PoolUsage::free_extents_on(uint32_t mdisk_id) const {
  auto it = used_.find(mdisk_id);
  if (it == used_.end()) return 0;
  return static_cast<uint64_t>(std::count(it->second.begin(), it->second.end(), false));
}

bool PoolUsage::take_lowest_free(uint32_t mdisk_id, ExtentLoc& out) {
  auto& slots = used_[mdisk_id];
  auto it = std::find(slots.begin(), slots.end(), false);
  if (it == slots.end()) return false;
  *it = true;
  --free_;
  out = {mdisk_id, static_cast<uint32_t>(it - slots.begin())};
  return true;
}

Result<std::vector<ExtentLoc>> PoolUsage::allocate(uint32_t count, ExtentPolicy policy,
                                                   uint32_t& stripe_cursor) {
  if (count > free_)
    return make_error("pool has " + std::to_string(free_) + " free extents, " +
                          std::to_string(count) + " needed",
                      ENOSPC);
  std::vector<ExtentLoc> out;
  out.reserve(count);
  const size_t n = order_.size();
  if (policy == ExtentPolicy::striped) {
    size_t cursor = n ? stripe_cursor % n : 0;
    while (out.size() < count) {
      // free_ >= remaining guarantees one of the n mdisks has a free slot.
      for (size_t step = 0; step < n; ++step) {
        size_t i = (cursor + step) % n;
        ExtentLoc loc;
        if (take_lowest_free(order_[i], loc)) {
          out.push_back(loc);
          cursor = (i + 1) % n;
          break;
        }
      }
    }
    stripe_cursor = static_cast<uint32_t>(cursor);
  } else {
    for (uint32_t id : order_) {
      ExtentLoc loc;
      while (out.size() < count && take_lowest_free(id, loc)) out.push_back(loc);
      if (out.size() == count) break;
    }
  }
  return out;
}

}  // namespace sve

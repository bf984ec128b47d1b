#pragma once
// Which extents of a pool are free, and how a vdisk takes new ones.
// Striped: round-robin across the pool's mdisks, starting where the previous
// striped allocation stopped. Sequential: fill one mdisk before the next.
#include <cstdint>
#include <map>
#include <vector>

#include "util/result.hpp"
#include "model/model.hpp"

namespace sve {

class PoolUsage {
 public:
  PoolUsage(const ClusterModel& config, const PoolConfig& pool);

  uint64_t total_extents() const { return total_; }
  uint64_t free_extents() const { return free_; }
  uint64_t free_extents_on(uint32_t mdisk_id) const;

  // Takes `count` extents by `policy`, or fails without taking any.
  Result<std::vector<ExtentLoc>> allocate(uint32_t count, ExtentPolicy policy,
                                          uint32_t& stripe_cursor);

 private:
  bool take_lowest_free(uint32_t mdisk_id, ExtentLoc& out);

  std::vector<uint32_t> order_;                     // pool's mdisk order
  std::map<uint32_t, std::vector<bool>> used_;      // per mdisk slot
  uint64_t total_ = 0, free_ = 0;
};

}  // namespace sve

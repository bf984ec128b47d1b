#pragma once
// Point-in-time copy mappings in the model (docs/flashcopy.md): creating,
// deleting and moving them through SVC's states, as pure edits like
// model/edits.hpp's. Errors carry EINVAL, or EBUSY for a state that does
// not allow the change now.
#include <cstdint>
#include <optional>
#include <string>

#include "model/model.hpp"
#include "util/result.hpp"

namespace sve {

inline constexpr uint32_t kMaxCopyRate = 150;
inline constexpr uint32_t kMaxTargetsPerSource = 256;  // SVC's limit

struct NewFcMap {
  std::string name;  // empty: fcmapN
  std::string source;
  std::string target;
  uint32_t copy_rate = 50;
  uint32_t grain_bytes = 256 * 1024;  // 64K or 256K
  bool autodelete = false;
};
Result<FcMapConfig> create_fcmap(ClusterModel& model, const NewFcMap& args);
// Refused while it is copying or stopping unless `force` (its target is
// then left as it is: part copied, not a point in time).
Status delete_fcmap(ClusterModel& model, const std::string& name, bool force);
// idle_or_copied or stopped -> preparing.
Result<FcMapConfig> prepare_fcmap(ClusterModel& model, const std::string& name);
// preparing -> prepared, by the node that executes the source once its
// cache holds nothing dirty of it; `id`: the mapping it checked.
Result<FcMapConfig> fcmap_prepared(ClusterModel& model, uint32_t id);
// prepared -> starting: the node that executes the source pauses writes to
// source and target and lets those below the copy facility drain, then
// commits the point in time (fcmap_started).
Result<FcMapConfig> start_fcmap(ClusterModel& model, const std::string& name);
// starting -> copying, by `node`, which executes the source and has paused
// and drained its writes for start `start_seq`; false if it was not that
// start any more.
Result<bool> fcmap_started(ClusterModel& model, uint32_t id, uint64_t start_seq, uint32_t node);
// copying -> stopped (the target offline), preparing/prepared/starting ->
// idle_or_copied; a stopped or suspended one stays.
Result<FcMapConfig> stop_fcmap(ClusterModel& model, const std::string& name);
// copying -> idle_or_copied (deleted with autodelete) once every grain of
// start `start_seq` is copied; false if it was not that start any more.
Result<bool> fcmap_copied(ClusterModel& model, uint32_t id, uint64_t start_seq);
// copying -> suspended: what was copied is not known (the node that kept
// it stopped executing the source).
Result<bool> suspend_fcmap(ClusterModel& model, uint32_t id, uint64_t start_seq,
                           const std::string& why);
// The copy rate or autodelete changed (SVC's chfcmap).
Result<FcMapConfig> set_fcmap(ClusterModel& model, const std::string& name,
                              std::optional<uint32_t> copy_rate, std::optional<bool> autodelete);

// Why vdisk `id` may not be deleted (any mapping) or moved or resized (a
// mapping not idle); empty if it may.
std::string fcmap_blocks_delete(const ClusterModel& model, uint32_t vdisk);
std::string fcmap_blocks_change(const ClusterModel& model, uint32_t vdisk);

// Bytes a second of background copy at `copy_rate` (SVC's table: 50 is
// 2 MiB/s, each 10 more doubles it, 100 is 64 MiB/s, 150 is 2 GiB/s; 1..10
// is 128 KiB/s). 0 for rate 0.
uint64_t copy_rate_bytes(uint32_t copy_rate);

}  // namespace sve

#pragma once
// Point-in-time copy mappings in the model (docs/flashcopy.md): creating,
// deleting and moving them through SVC's states, as pure edits like
// model/edits.hpp's. Errors carry EINVAL, or EBUSY for a state that does
// not allow the change now.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "util/result.hpp"

namespace sve {

inline constexpr uint32_t kMaxCopyRate = 150;
inline constexpr uint32_t kMaxTargetsPerSource = 256;  // SVC's limit
inline constexpr uint32_t kMaxMapsPerGroup = 512;      // SVC's limit

struct NewFcMap {
  std::string name;  // empty: fcmapN
  std::string source;
  std::string target;
  uint32_t copy_rate = 50;
  uint32_t clean_rate = 50;  // stopping with mappings that read through its target
  uint32_t grain_bytes = 256 * 1024;  // 64K or 256K
  bool autodelete = false;
  bool incremental = false;
  std::string group;  // a consistency group to join (empty: none)
};
// Also makes its bitmap's hidden vdisk in the source's pool (`online`: the
// mdisks that may hold it).
Result<FcMapConfig> create_fcmap(ClusterModel& model, const NewFcMap& args,
                                 const std::function<bool(uint32_t)>& online);
// Refused while it is copying or stopping unless `force` (its target is
// then left as it is: part copied, not a point in time); refused even then
// while later mappings read through its target.
Status delete_fcmap(ClusterModel& model, const std::string& name, bool force);
// idle_or_copied, stopped or suspended -> preparing. prepare, start and
// stop are refused for a mapping in a consistency group (its group's are
// what moves it). A mapping that shares a vdisk with mappings not idle (a
// cascade, a restore) takes their home (the core that executes them all);
// refused while its source is offline (the target of a mapping stopping,
// stopped or suspended) or if it would join mappings executed apart.
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
// start any more, or nothing changed. A mapping in a consistency group is
// only marked drained, until every mapping of the group is: then they all
// go to copying in this one change (the group's instant).
Result<bool> fcmap_started(ClusterModel& model, uint32_t id, uint64_t start_seq, uint32_t node);
// copying -> stopped (the target offline), or -> stopping while later
// mappings read through its target (they get the grains they need first,
// then fcmap_cleaned); preparing/prepared/starting -> idle_or_copied; a
// stopped or suspended one stays. With `force` (SVC's stopfcmap -force) a
// copying or stopping mapping goes to stopped at once, and the mappings that
// read through its target, and theirs, are stopped with it (their targets
// offline too). Refused, even with `force`, while a mapping whose source is
// its target is preparing, prepared or starting.
Result<FcMapConfig> stop_fcmap(ClusterModel& model, const std::string& name, bool force = false);
// copying -> idle_or_copied (deleted with autodelete) once every grain of
// start `start_seq` is copied; false if it was not that start any more.
Result<bool> fcmap_copied(ClusterModel& model, uint32_t id, uint64_t start_seq);
// copying -> suspended: what was copied is not known (the node that kept
// it stopped executing the source). The mappings that read through its
// target are suspended with it.
Result<bool> suspend_fcmap(ClusterModel& model, uint32_t id, uint64_t start_seq,
                           const std::string& why);
// stopping -> stopped: the grains later mappings needed are on their targets.
Result<bool> fcmap_cleaned(ClusterModel& model, uint32_t id, uint64_t start_seq);
// The copy rate or autodelete changed, or the mapping joined or left a
// consistency group (`group`: its name, or empty to leave; SVC's chfcmap).
struct FcMapChange {
  std::optional<uint32_t> copy_rate;
  std::optional<bool> autodelete;
  std::optional<std::string> group;
  std::optional<uint32_t> clean_rate;
};
Result<FcMapConfig> set_fcmap(ClusterModel& model, const std::string& name,
                              const FcMapChange& change);

// Consistency groups. A group's state is its
// mappings': "empty", or the state of the one furthest from idle.
Result<FcGroupConfig> create_fcgroup(ClusterModel& model, const std::string& name);
// Refused while it has mappings, unless `force`: they are left standalone.
Status delete_fcgroup(ClusterModel& model, const std::string& name, bool force);
Status prepare_fcgroup(ClusterModel& model, const std::string& name);
Status start_fcgroup(ClusterModel& model, const std::string& name);
Status stop_fcgroup(ClusterModel& model, const std::string& name, bool force = false);
std::string fcgroup_state(const ClusterModel& model, uint32_t group);
// Why a mapping may not join or leave `group` now; empty if it may.
std::string fcgroup_blocks_join(const ClusterModel& model, const FcMapConfig& map,
                                const FcGroupConfig* group);

// The mappings that read through `f`'s target (SVC's dependent mappings):
// copying or stopping ones from it that became copying after it.
std::vector<const FcMapConfig*> fcmap_dependents(const ClusterModel& model,
                                                const FcMapConfig& f);

// Why vdisk `id` may not be deleted (any mapping) or moved or resized (a
// mapping not idle); empty if it may.
std::string fcmap_blocks_delete(const ClusterModel& model, uint32_t vdisk);
std::string fcmap_blocks_change(const ClusterModel& model, uint32_t vdisk);

// Bytes a second of background copy at `copy_rate` (SVC's table: 50 is
// 2 MiB/s, each 10 more doubles it, 100 is 64 MiB/s, 150 is 2 GiB/s; 1..10
// is 128 KiB/s). 0 for rate 0.
uint64_t copy_rate_bytes(uint32_t copy_rate);

}  // namespace sve

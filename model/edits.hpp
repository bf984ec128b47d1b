#pragma once
// Every change an admin command makes to the cluster's model, as a pure
// function: (the model as it is, validated arguments) -> the changed model,
// or an error that says why not. No JSON, no devices, no actors: the
// configuration service parses the request, calls one of these on a copy of
// the committed model, does the device side effects (labels, zeroing) and
// commits; the data-path simulator and the unit tests call them directly.
//
// An edit that fails may leave `model` half changed: callers edit a copy
// and throw it away on an error (ConfigService::commit_change does). Errors
// carry EINVAL, or ENOSPC where the pool is short of extents. Facts only a node's devices know (is an mdisk
// online?) come in as arguments.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "util/result.hpp"

namespace sve {

inline constexpr uint64_t kMinExtentBytes = 1ull << 20;
inline constexpr uint64_t kMaxExtentBytes = 8ull << 30;
inline constexpr uint64_t kDefaultExtentBytes = 16ull << 20;

// Whether mdisk `id` is attached on the node making the change.
using MdiskOnline = std::function<bool(uint32_t id)>;

// Where a vdisk goes: the I/O group named (or the only one there is), and
// the node it prefers there (or the group's node fewer vdisks prefer).
struct Placement {
  std::optional<std::string> iogrp;
  std::optional<uint32_t> node;
};

// ---- mdisks
// A new mdisk (its label already written with `uuid`); returns its id.
Result<uint32_t> add_mdisk(ClusterModel& model, const std::string& name, const std::string& path,
                           const std::string& uuid, uint64_t data_bytes);
// The mdisk labelled `uuid` found again at `path`, under its own name;
// returns its id, or 0 if the model has no mdisk with that uuid.
Result<uint32_t> reattach_mdisk(ClusterModel& model, const std::string& name,
                                const std::string& uuid, const std::string& path);
// Returns the id of the mdisk removed; refused while a pool uses it.
Result<uint32_t> remove_mdisk(ClusterModel& model, const std::string& name);

// ---- pools
Result<PoolConfig> create_pool(ClusterModel& model, const std::string& name,
                               uint64_t extent_bytes, const std::vector<std::string>& mdisks,
                               const MdiskOnline& online);
Status delete_pool(ClusterModel& model, const std::string& name);
// More capacity for a pool, online: new extents come from these mdisks too
// (SVC's addmdisk). Each must be unused, online and hold an extent.
Result<PoolConfig> add_pool_mdisks(ClusterModel& model, const std::string& pool,
                                   const std::vector<std::string>& mdisks,
                                   const MdiskOnline& online);

// ---- vdisks
struct NewVdisk {
  std::string name;
  std::string pool;
  uint64_t size_bytes = 0;
  ExtentPolicy policy = ExtentPolicy::striped;
  Placement placement;
  // False in a cluster: the extents are committed first and zeroed after,
  // and the vdisk is not exported until a second edit (mark_formatted).
  bool formatted = true;
  // Thin (grain_bytes != 0, docs/thin.md): the extents taken now are its
  // real capacity, `rsize_bytes` or `rsize_pct` of the size (2% by
  // default, as SVC), at least what its map and one grain need. A thin
  // vdisk may be larger than the pool's free space.
  uint32_t grain_bytes = 0;
  std::optional<uint64_t> rsize_bytes;
  std::optional<uint32_t> rsize_pct;
  uint32_t warning_pct = 80;
  bool autoexpand = true;
};
// The grain sizes a thin vdisk may have: 32K, 64K, 128K, 256K.
bool valid_grain(uint64_t grain_bytes);
// The extents a thin vdisk needs at least (its map and one grain).
uint32_t thin_min_extents(uint64_t size_bytes, uint32_t grain_bytes, uint64_t extent_bytes);
Result<VdiskConfig> create_vdisk(ClusterModel& model, const NewVdisk& args,
                                 const MdiskOnline& online);
Status mark_formatted(ClusterModel& model, const std::string& name, uint32_t id);
// Grows a vdisk to `size_bytes`. Returns the extents it took (to be zeroed
// before a host may read them). With `extents_only`, the extents are
// taken but the size stays (a cluster grows it by grow_to_extents after
// zeroing them).
struct Expansion {
  VdiskConfig vdisk;              // as it is after the edit
  std::vector<ExtentLoc> added;   // the new extents
  uint64_t extent_bytes = 0;      // of its pool
};
Result<Expansion> expand_vdisk(ClusterModel& model, const std::string& name, uint64_t size_bytes,
                               bool extents_only);
// The second step of a cluster's expansion: the size grows to `size_bytes`
// if the vdisk still is vdisk `id` and has the extents for it.
Result<VdiskConfig> grow_to_extents(ClusterModel& model, const std::string& name, uint32_t id,
                                    uint64_t size_bytes);
Status delete_vdisk(ClusterModel& model, const std::string& name);
// More real capacity for thin vdisk `id`: `wanted` extents, or as many as
// the pool has if fewer, but at least `needed` (else ENOSPC). The new
// extents need no zeroing: the thin layer never reads a grain it did not
// write, and zeros the rest of a grain it writes first.
Result<Expansion> grow_thin(ClusterModel& model, const std::string& name, uint32_t id,
                            uint32_t needed, uint32_t wanted);
// Thin settings changed (SVC's chvdisk -warning / -autoexpand).
Result<VdiskConfig> set_thin(ClusterModel& model, const std::string& name,
                             std::optional<uint32_t> warning_pct, std::optional<bool> autoexpand);
// Hosts may only read it from now on (or may write again).
Result<VdiskConfig> set_read_only(ClusterModel& model, const std::string& name, bool read_only);
// Online: hosts keep their connections. A move that changes the node that
// executes its requests starts a handover from the old owner
// (model/ownership.hpp).
Result<VdiskConfig> move_vdisk(ClusterModel& model, const std::string& name,
                               const Placement& placement);

// ---- I/O groups
// `configured`: the cluster's node ids.
Result<IoGroupConfig> create_iogrp(ClusterModel& model, const std::string& name,
                                   std::vector<uint32_t> nodes,
                                   const std::vector<uint32_t>& configured);
Status delete_iogrp(ClusterModel& model, const std::string& name);

// Sets a vdisk's group and preferred node from `placement`.
Status place_vdisk(const ClusterModel& model, const Placement& placement, VdiskConfig& v);

}  // namespace sve

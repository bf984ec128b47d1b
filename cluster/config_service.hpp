#pragma once
// The node's configuration state machine: validates admin commands on mdisks,
// pools and vdisks, commits each change to the crash-safe store, and keeps
// the back-end devices it describes open. One thread owns it (the config
// actor). In the cluster this becomes the RSM that applies committed events;
// the commands here are those events.
#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/state/config_store.hpp"
#include "hw/device/block_device.hpp"
#include "util/result.hpp"
#include "model/edits.hpp"
#include "model/model.hpp"

namespace sve {

using DeviceTable = std::map<uint32_t, std::shared_ptr<BlockDevice>>;


// How a cluster node commits: the change goes to the cluster as an event,
// valid only on top of version `base`; the answer is the committed model,
// or an error (code ESTALE: another change came first; redo it on current()).
struct ClusterLink {
  std::function<Result<ClusterModel>(uint64_t base, const ClusterModel& next)> commit;
  std::function<std::optional<ClusterModel>()> current;
  // The cluster's configured node ids.
  std::function<std::vector<uint32_t>()> nodes;
};

// `vdisk show`'s view of a vdisk's SCSI reservations (config_reservations.cpp).
nlohmann::json describe_reservations(const Reservations& reservations);

class ConfigService {
 public:
  static Result<std::unique_ptr<ConfigService>> open(const std::string& data_dir);
  // A cluster node: the model lives in cluster state. What the data dir
  // holds from before is only the seed a new cluster starts from.
  static Result<std::unique_ptr<ConfigService>> open_clustered(const std::string& data_dir,
                                                               ClusterLink link);
  // A committed model from the cluster (any node's change). Attaches the
  // devices it names. False if it was not newer.
  bool adopt(const ClusterModel& config);
  const ClusterModel& seed() const { return seed_; }

  // {"cmd": "vdisk.create", ...} -> {"ok": true, "result": ...} or
  // {"ok": false, "error": "..."}. Never throws.
  nlohmann::json handle(const nlohmann::json& request);

  const ClusterModel& config() const { return config_; }
  const DeviceTable& devices() const { return devices_; }
  // An internal step, not an admin command: the thin controller gives thin
  // vdisk `name` (still `id`) more real capacity (model/edits.hpp,
  // grow_thin). Returns the extents it took.
  Result<uint32_t> grow_thin_vdisk(const std::string& name, uint32_t id, uint32_t needed,
                                   uint32_t wanted);
  uint64_t version() const { return config_.version; }
  // An internal step of a point-in-time copy (config_fcmap.cpp), committed
  // by the node that executes its source: true if it was still due.
  enum class FcStep { prepared, started, copied, lost, cleaned };
  // A host's reservation request for vdisk `vdisk` from nexus `who`
  // (model/reservations.hpp), applied to the committed model and
  // committed if it changed anything. The outcome is the SCSI status the
  // command ends with; an error: it could not be committed.
  Result<ReservationOutcome> apply_reservation(uint32_t vdisk, const Nexus& who,
                                               const ReservationRequest& request);
  Result<bool> fcmap_step(FcStep step, uint32_t id, uint64_t start_seq, uint32_t node,
                          const std::string& why);

 private:
  explicit ConfigService(std::string data_dir)
      : data_dir_(std::move(data_dir)), store_(data_dir_) {}
  Status load();
  void attach_mdisks();
  std::shared_ptr<BlockDevice> find_labelled(const std::string& uuid);
  Status commit(ClusterModel next);
  // Commits `change` applied to the current model; in a cluster, redone on
  // the newer model when another change came first. Nothing is committed
  // if `worth` says the change (as just made) changed nothing.
  Status commit_change(const std::function<Status(ClusterModel&)>& change,
                       const std::function<bool()>& worth = nullptr);
  void sync_devices();

  Result<nlohmann::json> dispatch(const std::string& cmd, const nlohmann::json& args);
  Result<nlohmann::json> mdisk_add(const nlohmann::json& args);
  Result<nlohmann::json> mdisk_list();
  Result<nlohmann::json> mdisk_remove(const nlohmann::json& args);
  Result<nlohmann::json> pool_create(const nlohmann::json& args);
  Result<nlohmann::json> pool_list();
  Result<nlohmann::json> pool_delete(const nlohmann::json& args);
  Result<nlohmann::json> pool_addmdisk(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_set(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_create(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_list();
  Result<nlohmann::json> vdisk_show(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_expand(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_delete(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_move(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_clear_reservations(const nlohmann::json& args);
  // I/O groups (config_iogrp.cpp).
  Result<nlohmann::json> iogrp_create(const nlohmann::json& args);
  Result<nlohmann::json> iogrp_list();
  Result<nlohmann::json> iogrp_delete(const nlohmann::json& args);
  // Point-in-time copy mappings (config_fcmap.cpp).
  Result<nlohmann::json> fcmap_create(const nlohmann::json& args);
  Result<nlohmann::json> fcmap_list();
  Result<nlohmann::json> fcmap_show(const nlohmann::json& args);
  Result<nlohmann::json> fcmap_change(const std::string& cmd, const nlohmann::json& args);
  nlohmann::json describe_fcmap(const FcMapConfig& f) const;
  // Their consistency groups (config_fcmap.cpp).
  Result<nlohmann::json> fcgroup_command(const std::string& cmd, const nlohmann::json& args);
  nlohmann::json describe_fcgroup(const FcGroupConfig& g) const;
  // Administrators (config_user.cpp).
  Result<nlohmann::json> user_command(const std::string& cmd, const nlohmann::json& args);
  // Hosts and vdisk-to-host mappings (config_host.cpp).
  Result<nlohmann::json> host_command(const std::string& cmd, const nlohmann::json& args);
  Result<nlohmann::json> vdisk_mapping(const std::string& cmd, const nlohmann::json& args);
  nlohmann::json describe_host(const HostConfig& h) const;
  nlohmann::json vdisk_hosts(uint32_t vdisk) const;
  // Zeroes new extents (they may hold a deleted vdisk's data) before a host
  // can read them.
  Status zero_extents(uint64_t extent_bytes, const std::vector<ExtentLoc>& extents);
  // Whether an mdisk is attached here, for the edits (model/edits.hpp).
  MdiskOnline online() const;
  nlohmann::json describe_vdisk(const VdiskConfig& v) const;

  std::string data_dir_;
  ConfigStore store_;
  ClusterModel config_;
  DeviceTable devices_;  // online mdisks only
  std::optional<ClusterLink> cluster_;
  ClusterModel seed_;
};

}  // namespace sve

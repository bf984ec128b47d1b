#pragma once
// The node's configuration state machine: validates admin commands on mdisks,
// pools and vdisks, commits each change to the crash-safe store, and keeps
// the back-end devices it describes open. One thread owns it (the config
// actor). In the cluster this becomes the RSM that applies committed events;
// the commands here are those events.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/state/config_store.hpp"
#include "hw/device/block_device.hpp"
#include "util/result.hpp"
#include "virt/model.hpp"

namespace sve {

using DeviceTable = std::map<uint32_t, std::shared_ptr<BlockDevice>>;

inline constexpr uint64_t kMinExtentBytes = 1ull << 20;
inline constexpr uint64_t kMaxExtentBytes = 8ull << 30;
inline constexpr uint64_t kDefaultExtentBytes = 16ull << 20;

class ConfigService {
 public:
  static Result<std::unique_ptr<ConfigService>> open(const std::string& data_dir);

  // {"cmd": "vdisk.create", ...} -> {"ok": true, "result": ...} or
  // {"ok": false, "error": "..."}. Never throws.
  nlohmann::json handle(const nlohmann::json& request);

  const NodeConfig& config() const { return config_; }
  const DeviceTable& devices() const { return devices_; }
  uint64_t version() const { return config_.version; }

 private:
  explicit ConfigService(std::string data_dir)
      : data_dir_(std::move(data_dir)), store_(data_dir_) {}
  Status load();
  void attach_mdisks();
  std::shared_ptr<BlockDevice> find_labelled(const std::string& uuid);
  Status commit(NodeConfig next);

  Result<nlohmann::json> dispatch(const std::string& cmd, const nlohmann::json& args);
  Result<nlohmann::json> mdisk_add(const nlohmann::json& args);
  Result<nlohmann::json> mdisk_list();
  Result<nlohmann::json> mdisk_remove(const nlohmann::json& args);
  Result<nlohmann::json> pool_create(const nlohmann::json& args);
  Result<nlohmann::json> pool_list();
  Result<nlohmann::json> pool_delete(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_create(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_list();
  Result<nlohmann::json> vdisk_show(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_expand(const nlohmann::json& args);
  Result<nlohmann::json> vdisk_delete(const nlohmann::json& args);
  Status zero_extents(const PoolConfig& pool, const std::vector<ExtentLoc>& extents);
  nlohmann::json describe_vdisk(const VdiskConfig& v) const;

  std::string data_dir_;
  ConfigStore store_;
  NodeConfig config_;
  DeviceTable devices_;  // online mdisks only
};

}  // namespace sve

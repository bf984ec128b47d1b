#include "cluster/config_service.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/config_args.hpp"
#include "cluster/conflict_backoff.hpp"
#include "model/thin_geometry.hpp"
#include "model/model_codec.hpp"
#include "hw/device/mdisk_label.hpp"
#include "util/size.hpp"
#include "util/uuid.hpp"
#include "model/edits.hpp"
#include "model/extent_allocator.hpp"

namespace sve {

using nlohmann::json;

using namespace config_args;

Result<std::unique_ptr<ConfigService>> ConfigService::open(const std::string& data_dir) {
  std::unique_ptr<ConfigService> svc(new ConfigService(data_dir));
  if (auto st = svc->load(); !st) return st.error();
  svc->attach_mdisks();
  return svc;
}

Result<std::unique_ptr<ConfigService>> ConfigService::open_clustered(
    const std::string& data_dir, ClusterLink link) {
  std::unique_ptr<ConfigService> svc(new ConfigService(data_dir));
  if (auto st = svc->load(); !st) return st.error();
  svc->seed_ = std::move(svc->config_);
  svc->config_ = ClusterModel{};
  svc->config_.version = 0;
  svc->cluster_ = std::move(link);
  return svc;
}

bool ConfigService::adopt(const ClusterModel& config) {
  if (config.config_uuid == config_.config_uuid && config.version <= config_.version)
    return false;
  config_ = config;
  sync_devices();
  return true;
}

// A cluster node opens the devices the model names (finding each by its
// label: another node may know it under another path) and lets go of the
// ones it no longer names.
void ConfigService::sync_devices() {
  for (auto it = devices_.begin(); it != devices_.end();)
    it = config_.find_mdisk(it->first) ? std::next(it) : devices_.erase(it);
  attach_mdisks();
}

Status ConfigService::load() {
  auto stored = store_.load();
  if (!stored) return stored.error();
  if (!stored.value()) {
    ClusterModel fresh;
    fresh.config_uuid = random_uuid();
    spdlog::info("new configuration {} in {}", fresh.config_uuid, data_dir_);
    return commit(std::move(fresh));
  }
  auto decoded = decode_config(stored.value()->payload);
  if (!decoded)
    return make_error("configuration in " + data_dir_ + " is corrupt (" +
                          decoded.error().message +
                          "); refusing to start and leaving it untouched",
                      EUCLEAN);
  config_ = std::move(decoded.value());
  if (config_.version != stored.value()->version || config_.config_uuid.empty())
    return make_error("configuration in " + data_dir_ +
                          " is inconsistent; refusing to start and leaving it untouched",
                      EUCLEAN);
  spdlog::info("loaded configuration {} version {}: {} mdisks, {} pools, {} vdisks",
               config_.config_uuid, config_.version, config_.mdisks.size(),
               config_.pools.size(), config_.vdisks.size());
  return ok_status();
}

// Finds a device carrying the label `uuid` among the places an mdisk may
// have moved to: files in the data directory, loop devices, and disks by id.
std::shared_ptr<BlockDevice> ConfigService::find_labelled(const std::string& uuid) {
  std::vector<std::string> candidates;
  auto scan = [&](const std::string& dir, const std::string& prefix) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name.rfind(prefix, 0) != 0) continue;
      candidates.push_back(dir + "/" + name);
    }
    ::closedir(d);
  };
  scan(data_dir_, "");
  scan("/dev", "loop");
  scan("/dev/disk/by-id", "");
  for (const auto& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
      continue;
    auto dev = BlockDevice::open(path);
    if (!dev) continue;
    auto label = read_label(*dev.value());
    if (label && label->state == LabelState::valid && label->label.mdisk_uuid == uuid &&
        label->label.config_uuid == config_.config_uuid)
      return dev.value();
  }
  return nullptr;
}

void ConfigService::attach_mdisks() {
  ClusterModel next = config_;
  bool moved = false;
  for (auto& m : next.mdisks) {
    if (devices_.count(m.id)) continue;
    std::shared_ptr<BlockDevice> device;
    if (BlockDevice::is_synthetic(m.path)) {
      // A memory or null mdisk starts empty in every process: its data did
      // not survive the restart, by definition. It gets its label back.
      auto dev = BlockDevice::open(m.path);
      if (dev && cluster_) {
        // Each node's memory is its own: a cluster shares no such mdisk.
        spdlog::warn("mdisk {} ({}) lives in another node's memory: offline here", m.name,
                     m.path);
        continue;
      }
      if (dev && write_label(*dev.value(), {m.uuid, next.config_uuid, m.name, m.data_bytes})) {
        spdlog::warn("mdisk {} ({}) starts empty: its data lived in memory", m.name, m.path);
        devices_[m.id] = dev.value();
      } else {
        spdlog::error("mdisk {} ({}) is offline: cannot recreate it", m.name, m.path);
      }
      continue;
    }
    if (auto dev = BlockDevice::open(m.path)) {
      auto label = read_label(*dev.value());
      if (label && label->state == LabelState::valid && label->label.mdisk_uuid == m.uuid)
        device = dev.value();
    }
    if (!device) {
      device = find_labelled(m.uuid);
      if (device) {
        spdlog::warn("mdisk {} moved from {} to {}", m.name, m.path, device->path());
        m.path = device->path();
        moved = true;
      }
    }
    if (device) {
      devices_[m.id] = device;
    } else {
      spdlog::error("mdisk {} ({}) is offline: no device with its label found", m.name,
                    m.path);
    }
  }
  if (moved && !cluster_) {  // in a cluster, paths are each node's own business
    if (auto st = commit(std::move(next)); !st)
      spdlog::error("cannot record new mdisk paths: {}", st.error().message);
  }
}

Status ConfigService::commit(ClusterModel next) {
  if (cluster_) {
    auto committed = cluster_->commit(config_.version, next);
    if (!committed) return committed.error();
    config_ = std::move(committed.value());
    return ok_status();
  }
  next.version = config_.version + 1;
  if (auto st = store_.save(next.version, encode_config(next)); !st) return st;
  config_ = std::move(next);
  return ok_status();
}

namespace {
Error kept_changing(const ConflictBackoff& backoff) {
  return make_error("the cluster's configuration kept changing under this command (" +
                        std::to_string(backoff.attempts()) +
                        " attempts): try again",
                    EBUSY);
}
}  // namespace

// The one retry loop: in a cluster another node's change may come first;
// the edit is then redone on the newer model (what it checked may have
// changed too).
Status ConfigService::commit_change(const std::function<Status(ClusterModel&)>& change,
                                    const std::function<bool()>& worth) {
  ConflictBackoff backoff;
  for (;;) {
    ClusterModel next = config_;
    if (auto st = change(next); !st) return st;
    if (worth && !worth()) return ok_status();
    auto st = commit(std::move(next));
    if (st || !cluster_ || st.error().code != ESTALE) return st;
    if (!backoff.pause()) return kept_changing(backoff);
    if (auto latest = cluster_->current()) adopt(*latest);
  }
}

json ConfigService::handle(const json& request) {
  try {
    std::string cmd = request.value("cmd", "");
    bool changes = !(cmd.ends_with(".list") || cmd.ends_with(".show"));
    if (cluster_ && changes && config_.config_uuid.empty())
      return {{"ok", false},
              {"error", "this node is not in a cluster: run 'svectl cluster create NAME' "
                        "here, or 'svectl node add' on a member of one"}};
    auto result = dispatch(cmd, request);
    if (result) return {{"ok", true}, {"result", std::move(result.value())}};
    return {{"ok", false}, {"error", result.error().message}};
  } catch (const std::exception& e) {
    return {{"ok", false}, {"error", std::string("bad request: ") + e.what()}};
  }
}

Result<json> ConfigService::dispatch(const std::string& cmd, const json& args) {
  if (cmd == "mdisk.add") return mdisk_add(args);
  if (cmd == "mdisk.list") return mdisk_list();
  if (cmd == "mdisk.remove") return mdisk_remove(args);
  if (cmd == "pool.create") return pool_create(args);
  if (cmd == "pool.list") return pool_list();
  if (cmd == "pool.delete") return pool_delete(args);
  if (cmd == "pool.addmdisk") return pool_addmdisk(args);
  if (cmd == "vdisk.create") return vdisk_create(args);
  if (cmd == "vdisk.list") return vdisk_list();
  if (cmd == "vdisk.show") return vdisk_show(args);
  if (cmd == "vdisk.expand") return vdisk_expand(args);
  if (cmd == "vdisk.delete") return vdisk_delete(args);
  if (cmd == "vdisk.set") return vdisk_set(args);
  if (cmd == "vdisk.move") return vdisk_move(args);
  if (cmd == "vdisk.clear-reservations") return vdisk_clear_reservations(args);
  if (cmd == "iogrp.create") return iogrp_create(args);
  if (cmd == "iogrp.list") return iogrp_list();
  if (cmd == "iogrp.delete") return iogrp_delete(args);
  if (cmd == "fcmap.create") return fcmap_create(args);
  if (cmd == "fcmap.list") return fcmap_list();
  if (cmd == "fcmap.show") return fcmap_show(args);
  if (cmd == "fcmap.prepare" || cmd == "fcmap.start" || cmd == "fcmap.stop" ||
      cmd == "fcmap.delete" || cmd == "fcmap.set")
    return fcmap_change(cmd, args);
  if (cmd.rfind("fcconsistgrp.", 0) == 0) return fcgroup_command(cmd, args);
  if (cmd.rfind("host.", 0) == 0) return host_command(cmd, args);
  if (cmd.rfind("user.", 0) == 0) return user_command(cmd, args);
  if (cmd == "vdisk.map" || cmd == "vdisk.unmap") return vdisk_mapping(cmd, args);
  return bad("unknown command '" + cmd + "'");
}

// ---- mdisks ---------------------------------------------------------------

Result<json> ConfigService::mdisk_add(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto path = get_string(args, "path");
  if (!path) return path.error();
  if (cluster_ && BlockDevice::is_synthetic(path.value()))
    return bad("memory and null mdisks live in one node's memory; a cluster needs devices "
               "every node reaches");
  auto dev = BlockDevice::open(path.value());
  if (!dev) return make_error("cannot use " + path.value() + ": " + dev.error().message,
                              dev.error().code);
  std::shared_ptr<BlockDevice> device = dev.value();
  for (const auto& [id, other] : devices_)
    if (other->path() == device->path() && !BlockDevice::is_synthetic(device->path()))
      return bad(path.value() + " is already mdisk " + config_.find_mdisk(id)->name);

  auto label = read_label(*device);
  if (!label) return label.error();
  if (label->state == LabelState::corrupt)
    return bad(path.value() + " carries a damaged SVE label; refusing to overwrite it");
  if (label->state == LabelState::valid) {
    const MdiskLabel& l = label->label;
    if (l.config_uuid != config_.config_uuid)
      return bad(path.value() + " is labelled as mdisk '" + l.name +
                 "' of another SVE configuration; refusing to overwrite it");
    // One of ours. An offline mdisk that reappears at a new path is
    // re-attached; a label from an add that never committed is reused.
    for (const auto& m : config_.mdisks)
      if (m.uuid == l.mdisk_uuid && devices_.count(m.id))
        return bad(path.value() + " is already mdisk " + m.name);
    uint32_t id = 0;
    auto st = commit_change([&](ClusterModel& next) -> Status {
      auto found = reattach_mdisk(next, name.value(), l.mdisk_uuid, device->path());
      if (!found) return found.error();
      id = found.value();
      return id ? ok_status() : make_error("not ours", ENOENT);
    });
    if (st) {
      devices_[id] = device;
      spdlog::info("mdisk {} back online at {}", name.value(), path.value());
      return json{{"name", name.value()}, {"reattached", true}};
    }
    if (st.error().code != ENOENT) return st.error();
  }
  if (config_.find_mdisk(name.value())) return bad("mdisk '" + name.value() + "' exists");
  if (device->size_bytes() < kMdiskReservedBytes + kMinExtentBytes)
    return bad(path.value() + " is too small: an mdisk needs at least " +
               format_size(kMdiskReservedBytes + kMinExtentBytes));
  std::string uuid = random_uuid();
  uint64_t data_bytes = device->size_bytes() - kMdiskReservedBytes;
  // Label first: a crash before the commit leaves a label of this
  // configuration with an unknown uuid, which a later add simply reuses.
  if (auto st = write_label(*device, {uuid, config_.config_uuid, name.value(), data_bytes}); !st)
    return st.error();
  uint32_t id = 0;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto added = add_mdisk(next, name.value(), device->path(), uuid, data_bytes);
    if (!added) return added.error();
    id = added.value();
    return ok_status();
  });
  if (!st) return st.error();
  devices_[id] = device;
  spdlog::info("mdisk {} added: {} ({})", name.value(), device->path(), format_size(data_bytes));
  return json{{"name", name.value()}, {"id", id}, {"capacity", data_bytes}};
}

Result<json> ConfigService::mdisk_list() {
  json out = json::array();
  for (const auto& m : config_.mdisks) {
    std::string pool;
    for (const auto& p : config_.pools)
      if (std::count(p.mdisks.begin(), p.mdisks.end(), m.id)) pool = p.name;
    out.push_back({{"name", m.name},
                   {"id", m.id},
                   {"path", m.path},
                   {"capacity", m.data_bytes},
                   {"pool", pool},
                   {"status", devices_.count(m.id) ? "online" : "offline"},
                   {"uuid", m.uuid}});
  }
  return out;
}

Result<json> ConfigService::mdisk_remove(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  uint32_t id = 0;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto removed = remove_mdisk(next, name.value());
    if (!removed) return removed.error();
    id = removed.value();
    return ok_status();
  });
  if (!st) return st.error();
  devices_.erase(id);
  return json{{"name", name.value()}, {"removed", true}};
}

// ---- pools ----------------------------------------------------------------

namespace {

// The request's "mdisks": a non-empty list of names (`none` says why not).
Result<std::vector<std::string>> mdisk_names(const json& args, const char* none) {
  if (!args.contains("mdisks") || !args["mdisks"].is_array() || args["mdisks"].empty())
    return make_error(none, EINVAL);
  std::vector<std::string> mdisks;
  for (const auto& item : args["mdisks"]) {
    if (!item.is_string()) return make_error("mdisk names must be strings", EINVAL);
    mdisks.push_back(item.get<std::string>());
  }
  return mdisks;
}

}  // namespace

Result<json> ConfigService::pool_create(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  uint64_t extent = kDefaultExtentBytes;
  if (args.contains("extent_size")) {
    auto e = get_size(args, "extent_size");
    if (!e) return e.error();
    extent = e.value();
  }
  auto named = mdisk_names(args, "a pool needs at least one mdisk");
  if (!named) return named.error();
  const std::vector<std::string>& mdisks = named.value();
  PoolConfig pool;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto created = create_pool(next, name.value(), extent, mdisks, online());
    if (!created) return created.error();
    pool = created.value();
    return ok_status();
  });
  if (!st) return st.error();
  return json{{"name", pool.name}, {"id", pool.id}, {"extent_size", extent}};
}

Result<json> ConfigService::pool_list() {
  json out = json::array();
  for (const auto& p : config_.pools) {
    PoolUsage usage(config_, p);
    json mdisks = json::array();
    for (uint32_t id : p.mdisks) mdisks.push_back(config_.find_mdisk(id)->name);
    // SVC's figures: the vdisks' virtual sizes, the extents they hold, and
    // virtual over capacity in percent (over 100: over-allocated).
    uint64_t virtual_bytes = 0, real_bytes = 0, thin = 0;
    for (const auto& v : config_.vdisks)
      if (v.pool_id == p.id) {
        if (!v.bitmap_of) virtual_bytes += v.size_bytes;
        real_bytes += v.extents.size() * p.extent_bytes;
        thin += v.thin();
      }
    uint64_t capacity = usage.total_extents() * p.extent_bytes;
    out.push_back({{"name", p.name},
                   {"id", p.id},
                   {"extent_size", p.extent_bytes},
                   {"capacity", usage.total_extents() * p.extent_bytes},
                   {"free", usage.free_extents() * p.extent_bytes},
                   {"extents_total", usage.total_extents()},
                   {"extents_free", usage.free_extents()},
                   {"virtual_capacity", virtual_bytes},
                   {"real_capacity", real_bytes},
                   {"overallocation", capacity ? virtual_bytes * 100 / capacity : 0},
                   {"thin_vdisks", thin},
                   {"mdisks", mdisks}});
  }
  return out;
}

Result<json> ConfigService::pool_addmdisk(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto mdisks = mdisk_names(args, "name at least one mdisk to add");
  if (!mdisks) return mdisks.error();
  PoolConfig pool;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto grown = add_pool_mdisks(next, name.value(), mdisks.value(), online());
    if (!grown) return grown.error();
    pool = grown.value();
    return ok_status();
  });
  if (!st) return st.error();
  PoolUsage usage(config_, pool);
  return json{{"name", pool.name},
              {"capacity", usage.total_extents() * pool.extent_bytes},
              {"free", usage.free_extents() * pool.extent_bytes}};
}

Result<json> ConfigService::pool_delete(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto st = commit_change([&](ClusterModel& next) { return delete_pool(next, name.value()); });
  if (!st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

// ---- vdisks ---------------------------------------------------------------

// New extents may hold a deleted vdisk's data: zero them before a host can
// read them.
Status ConfigService::zero_extents(uint64_t extent_bytes, const std::vector<ExtentLoc>& extents) {
  std::set<uint32_t> touched;
  for (const auto& e : extents) {
    auto it = devices_.find(e.mdisk_id);
    if (it == devices_.end()) return make_error("mdisk offline", EIO);
    uint64_t offset = kMdiskReservedBytes + uint64_t{e.index} * extent_bytes;
    if (auto st = it->second->zero_range(offset, extent_bytes); !st) return st;
    touched.insert(e.mdisk_id);
  }
  for (uint32_t id : touched)
    if (auto st = devices_[id]->sync(); !st) return st;
  return ok_status();
}

namespace {

// A thin vdisk's options: "thin", "grain", "rsize" (a size or a
// percentage of the virtual size), "warning" (percent), "autoexpand".
Status thin_args(const json& args, NewVdisk& want) {
  bool thin = args.value("thin", false);
  for (const char* key : {"grain", "rsize", "rsize_pct", "warning", "autoexpand"})
    if (args.contains(key) && !thin)
      return bad(std::string("'") + key + "' is for thin vdisks only: add --thin");
  if (!thin) return ok_status();
  want.grain_bytes = kDefaultGrainBytes;
  if (args.contains("grain")) {
    auto grain = get_size(args, "grain");
    if (!grain) return grain.error();
    if (!valid_grain(grain.value()))
      return bad("grain size must be 32K, 64K, 128K or 256K");
    want.grain_bytes = static_cast<uint32_t>(grain.value());
  }
  if (args.contains("rsize")) {
    auto rsize = get_size(args, "rsize");
    if (!rsize) return rsize.error();
    want.rsize_bytes = rsize.value();
  }
  if (args.contains("rsize_pct")) want.rsize_pct = args["rsize_pct"].get<uint32_t>();
  if (args.contains("warning")) want.warning_pct = args["warning"].get<uint32_t>();
  if (args.contains("autoexpand")) want.autoexpand = args["autoexpand"].get<bool>();
  return ok_status();
}

// What a new vdisk's extents must hold before a host reads them: all of a
// fully allocated vdisk; of a thin one only its map (it reads no grain it
// did not write).
std::vector<ExtentLoc> extents_to_zero(const VdiskConfig& v, uint64_t extent_bytes) {
  if (!v.thin()) return v.extents;
  uint64_t meta = ThinGeometry{v.size_bytes, v.grain_bytes}.meta_bytes();
  size_t n = std::min<size_t>(v.extents.size(), (meta + extent_bytes - 1) / extent_bytes);
  return {v.extents.begin(), v.extents.begin() + static_cast<ptrdiff_t>(n)};
}

}  // namespace

Result<uint32_t> ConfigService::grow_thin_vdisk(const std::string& name, uint32_t id,
                                                uint32_t needed, uint32_t wanted) {
  uint32_t added = 0;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto grown = grow_thin(next, name, id, needed, wanted);
    if (!grown) return grown.error();
    added = static_cast<uint32_t>(grown.value().added.size());
    return ok_status();
  });
  if (!st) return st.error();
  spdlog::info("thin vdisk {}: real capacity grew by {} extents", name, added);
  return added;
}

Result<json> ConfigService::vdisk_create(const json& args) {
  NewVdisk want;
  auto name = get_name(args, "name");
  if (!name) return name.error();
  want.name = name.value();
  auto pool_name = get_name(args, "pool");
  if (!pool_name) return pool_name.error();
  want.pool = pool_name.value();
  auto size = get_size(args, "size");
  if (!size) return size.error();
  want.size_bytes = size.value();
  if (args.contains("policy") &&
      !(args["policy"].is_string() &&
        parse_policy(args["policy"].get<std::string>(), want.policy)))
    return bad("policy must be 'striped' or 'sequential'");
  auto placement = get_placement(args);
  if (!placement) return placement.error();
  want.placement = placement.value();
  if (auto st = thin_args(args, want); !st) return st.error();
  // Alone, the extents are zeroed before the commit. In a cluster another
  // node may be handing out the same free extents right now: they are
  // committed to this vdisk first, unexported, and zeroed after.
  want.formatted = !cluster_;
  VdiskConfig v;
  uint64_t extent_bytes = 0;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto created = create_vdisk(next, want, online());
    if (!created) return created.error();
    v = created.value();
    extent_bytes = next.find_pool(v.pool_id)->extent_bytes;
    if (!cluster_) return zero_extents(extent_bytes, extents_to_zero(v, extent_bytes));
    return ok_status();
  });
  if (!st) return st.error();
  if (cluster_) {
    auto formatted = zero_extents(extent_bytes, extents_to_zero(v, extent_bytes));
    if (formatted)
      formatted = commit_change(
          [&](ClusterModel& next) { return mark_formatted(next, v.name, v.id); });
    if (!formatted)
      return make_error("vdisk '" + v.name + "' stays unformatted: " +
                            formatted.error().message + " (delete it and create it again)",
                        formatted.error().code);
    v.formatted = true;
  }
  spdlog::info("vdisk {} created: {} in pool {}", v.name, format_size(v.size_bytes),
               want.pool);
  return describe_vdisk(v);
}

json ConfigService::describe_vdisk(const VdiskConfig& v) const {
  const PoolConfig* pool = config_.find_pool(v.pool_id);
  std::map<std::string, uint32_t> per_mdisk;
  json extents = json::array();
  for (size_t i = 0; i < v.extents.size(); ++i) {
    const MdiskConfig* m = config_.find_mdisk(v.extents[i].mdisk_id);
    std::string mname = m ? m->name : "?";
    ++per_mdisk[mname];
    extents.push_back({{"index", i}, {"mdisk", mname}, {"mdisk_extent", v.extents[i].index}});
  }
  const IoGroupConfig* g = config_.find_iogrp(v.iogrp_id);
  json d = {{"name", v.name},
          {"id", v.id},
          {"status", v.formatted ? "online" : "formatting"},
          {"iogrp", g ? g->name : ""},
          {"preferred_node", v.preferred_node},
          {"pool", pool ? pool->name : "?"},
          {"size", v.size_bytes},
          {"policy", to_string(v.policy)},
          {"extent_size", pool ? pool->extent_bytes : 0},
          {"extent_count", v.extents.size()},
          {"read_only", v.read_only},
          {"thin", v.thin()},
          {"virtual_capacity", v.size_bytes},
          {"real_capacity", v.extents.size() * (pool ? pool->extent_bytes : 0)},
          {"extents_per_mdisk", per_mdisk},
          {"extents", extents}};
  if (v.thin()) {
    d["grain_size"] = v.grain_bytes;
    d["warning"] = v.warning_pct;
    d["autoexpand"] = v.autoexpand;
  }
  if (const Reservations* r = config_.find_reservations(v.id))
    d["reservations"] = describe_reservations(*r);
  return d;
}

Result<json> ConfigService::vdisk_list() {
  json out = json::array();
  for (const auto& v : config_.vdisks) {
    if (v.bitmap_of) continue;  // a mapping's bitmap: not a host's (fcmap show)
    json d = describe_vdisk(v);
    d.erase("extents");
    d.erase("reservations");
    out.push_back(std::move(d));
  }
  return out;
}

Result<json> ConfigService::vdisk_show(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  VdiskConfig* v = config_.find_vdisk(name.value());
  if (!v) return bad("no vdisk '" + name.value() + "'");
  json d = describe_vdisk(*v);
  d["hosts"] = vdisk_hosts(v->id);
  return d;
}

Result<json> ConfigService::vdisk_set(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  std::optional<bool> read_only, autoexpand;
  std::optional<uint32_t> warning;
  if (args.contains("read_only")) read_only = args["read_only"].get<bool>();
  if (args.contains("autoexpand")) autoexpand = args["autoexpand"].get<bool>();
  if (args.contains("warning")) warning = args["warning"].get<uint32_t>();
  if (!read_only && !autoexpand && !warning)
    return bad("say what to set: --read-only/--read-write, --warning N or "
               "--autoexpand/--no-autoexpand");
  VdiskConfig v;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    if (warning || autoexpand) {
      auto set = set_thin(next, name.value(), warning, autoexpand);
      if (!set) return set.error();
      v = set.value();
    }
    if (read_only) {
      auto set = set_read_only(next, name.value(), *read_only);
      if (!set) return set.error();
      v = set.value();
    }
    return ok_status();
  });
  if (!st) return st.error();
  return describe_vdisk(v);
}

Result<json> ConfigService::vdisk_expand(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto size = get_size(args, "size");
  if (!size) return size.error();
  // Alone: the new extents are zeroed, then committed with the size. In a
  // cluster, as at create: the extents are the vdisk's (beyond its size,
  // where no host reaches) before they are zeroed, and the size grows after.
  Expansion grown;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto e = expand_vdisk(next, name.value(), size.value(), cluster_.has_value());
    if (!e) return e.error();
    grown = std::move(e.value());
    if (!cluster_) return zero_extents(grown.extent_bytes, grown.added);
    return ok_status();
  });
  if (!st) return st.error();
  if (cluster_) {
    if (auto z = zero_extents(grown.extent_bytes, grown.added); !z) return z.error();
    auto sized = commit_change([&](ClusterModel& next) -> Status {
      auto v = grow_to_extents(next, name.value(), grown.vdisk.id, size.value());
      if (!v) return v.error();
      grown.vdisk = v.value();
      return ok_status();
    });
    if (!sized) return sized.error();
  }
  return describe_vdisk(grown.vdisk);
}

Result<json> ConfigService::vdisk_delete(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto st = commit_change([&](ClusterModel& next) { return delete_vdisk(next, name.value()); });
  if (!st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

MdiskOnline ConfigService::online() const {
  return [this](uint32_t id) { return devices_.count(id) > 0; };
}

}  // namespace sve

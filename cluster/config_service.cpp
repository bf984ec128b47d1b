#include "cluster/config_service.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/config_args.hpp"
#include "cluster/conflict_backoff.hpp"
#include "model/model_codec.hpp"
#include "hw/device/mdisk_label.hpp"
#include "util/size.hpp"
#include "util/uuid.hpp"
#include "model/extent_allocator.hpp"

namespace sve {

using nlohmann::json;

using namespace config_args;

namespace {

uint32_t extents_for(uint64_t size_bytes, uint64_t extent_bytes) {
  return static_cast<uint32_t>((size_bytes + extent_bytes - 1) / extent_bytes);
}

}  // namespace

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

Status ConfigService::commit_change(const std::function<Status(ClusterModel&)>& change) {
  ConflictBackoff backoff;
  for (;;) {
    ClusterModel next = config_;
    if (auto st = change(next); !st) return st;
    auto st = commit(std::move(next));
    if (st || !cluster_ || st.error().code != ESTALE) return st;
    // Not ESTALE once given up: the caller may have done more than this
    // change (committed a first step), so it must not redo the whole command.
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
    // In a cluster another node's change may come first: redo this one on
    // top of it (what it checked may have changed too).
    ConflictBackoff backoff;
    for (;;) {
      auto result = dispatch(cmd, request);
      if (result) return {{"ok", true}, {"result", std::move(result.value())}};
      if (cluster_ && result.error().code == ESTALE) {
        if (!backoff.pause()) return {{"ok", false}, {"error", kept_changing(backoff).message}};
        if (auto latest = cluster_->current()) adopt(*latest);
        continue;
      }
      return {{"ok", false}, {"error", result.error().message}};
    }
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
  if (cmd == "vdisk.create") return vdisk_create(args);
  if (cmd == "vdisk.list") return vdisk_list();
  if (cmd == "vdisk.show") return vdisk_show(args);
  if (cmd == "vdisk.expand") return vdisk_expand(args);
  if (cmd == "vdisk.delete") return vdisk_delete(args);
  if (cmd == "vdisk.move") return vdisk_move(args);
  if (cmd == "iogrp.create") return iogrp_create(args);
  if (cmd == "iogrp.list") return iogrp_list();
  if (cmd == "iogrp.delete") return iogrp_delete(args);
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
  ClusterModel next = config_;
  if (label->state == LabelState::corrupt)
    return bad(path.value() + " carries a damaged SVE label; refusing to overwrite it");
  if (label->state == LabelState::valid) {
    const MdiskLabel& l = label->label;
    if (l.config_uuid != config_.config_uuid)
      return bad(path.value() + " is labelled as mdisk '" + l.name +
                 "' of another SVE configuration; refusing to overwrite it");
    // One of ours. An offline mdisk that reappears at a new path is
    // re-attached; a label from an add that never committed is reused.
    for (auto& m : next.mdisks) {
      if (m.uuid != l.mdisk_uuid) continue;
      if (devices_.count(m.id)) return bad(path.value() + " is already mdisk " + m.name);
      if (m.name != name.value())
        return bad(path.value() + " is offline mdisk '" + m.name +
                   "'; add it under that name to bring it back");
      m.path = device->path();
      uint32_t id = m.id;
      if (auto st = commit(std::move(next)); !st) return st.error();
      devices_[id] = device;
      spdlog::info("mdisk {} back online at {}", name.value(), path.value());
      return json{{"name", name.value()}, {"reattached", true}};
    }
  }
  if (next.find_mdisk(name.value())) return bad("mdisk '" + name.value() + "' exists");
  if (device->size_bytes() < kMdiskReservedBytes + kMinExtentBytes)
    return bad(path.value() + " is too small: an mdisk needs at least " +
               format_size(kMdiskReservedBytes + kMinExtentBytes));

  MdiskConfig m;
  m.id = next.next_id++;
  m.name = name.value();
  m.path = device->path();
  m.uuid = random_uuid();
  m.data_bytes = device->size_bytes() - kMdiskReservedBytes;
  // Label first: a crash before the commit leaves a label of this
  // configuration with an unknown uuid, which a later add simply reuses.
  if (auto st = write_label(*device, {m.uuid, next.config_uuid, m.name, m.data_bytes}); !st)
    return st.error();
  next.mdisks.push_back(m);
  if (auto st = commit(std::move(next)); !st) return st.error();
  devices_[m.id] = device;
  spdlog::info("mdisk {} added: {} ({})", m.name, m.path, format_size(m.data_bytes));
  return json{{"name", m.name}, {"id", m.id}, {"capacity", m.data_bytes}};
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
  ClusterModel next = config_;
  MdiskConfig* m = next.find_mdisk(name.value());
  if (!m) return bad("no mdisk '" + name.value() + "'");
  for (const auto& p : next.pools)
    if (std::count(p.mdisks.begin(), p.mdisks.end(), m->id))
      return bad("mdisk '" + name.value() + "' is used by pool '" + p.name + "'");
  uint32_t id = m->id;
  next.mdisks.erase(next.mdisks.begin() + (m - next.mdisks.data()));
  if (auto st = commit(std::move(next)); !st) return st.error();
  devices_.erase(id);
  return json{{"name", name.value()}, {"removed", true}};
}

// ---- pools ----------------------------------------------------------------

Result<json> ConfigService::pool_create(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  uint64_t extent = kDefaultExtentBytes;
  if (args.contains("extent_size")) {
    auto e = get_size(args, "extent_size");
    if (!e) return e.error();
    extent = e.value();
  }
  if (extent < kMinExtentBytes || extent > kMaxExtentBytes || (extent & (extent - 1)))
    return bad("extent size must be a power of two from 1M to 8G, not " +
               format_size(extent));
  if (!args.contains("mdisks") || !args["mdisks"].is_array() || args["mdisks"].empty())
    return bad("a pool needs at least one mdisk");
  ClusterModel next = config_;
  if (next.find_pool(name.value())) return bad("pool '" + name.value() + "' exists");
  PoolConfig pool;
  pool.id = next.next_id++;
  pool.name = name.value();
  pool.extent_bytes = extent;
  for (const auto& item : args["mdisks"]) {
    if (!item.is_string()) return bad("mdisk names must be strings");
    std::string mname = item.get<std::string>();
    MdiskConfig* m = next.find_mdisk(mname);
    if (!m) return bad("no mdisk '" + mname + "'");
    if (std::count(pool.mdisks.begin(), pool.mdisks.end(), m->id))
      return bad("mdisk '" + mname + "' named twice");
    for (const auto& p : next.pools)
      if (std::count(p.mdisks.begin(), p.mdisks.end(), m->id))
        return bad("mdisk '" + mname + "' already belongs to pool '" + p.name + "'");
    if (!devices_.count(m->id)) return bad("mdisk '" + mname + "' is offline");
    if (extent_slots(*m, extent) == 0)
      return bad("mdisk '" + mname + "' (" + format_size(m->data_bytes) +
                 ") is smaller than one extent of " + format_size(extent));
    pool.mdisks.push_back(m->id);
  }
  next.pools.push_back(pool);
  if (auto st = commit(std::move(next)); !st) return st.error();
  return json{{"name", pool.name}, {"id", pool.id}, {"extent_size", extent}};
}

Result<json> ConfigService::pool_list() {
  json out = json::array();
  for (const auto& p : config_.pools) {
    PoolUsage usage(config_, p);
    json mdisks = json::array();
    for (uint32_t id : p.mdisks) mdisks.push_back(config_.find_mdisk(id)->name);
    out.push_back({{"name", p.name},
                   {"id", p.id},
                   {"extent_size", p.extent_bytes},
                   {"capacity", usage.total_extents() * p.extent_bytes},
                   {"free", usage.free_extents() * p.extent_bytes},
                   {"extents_total", usage.total_extents()},
                   {"extents_free", usage.free_extents()},
                   {"mdisks", mdisks}});
  }
  return out;
}

Result<json> ConfigService::pool_delete(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  ClusterModel next = config_;
  PoolConfig* p = next.find_pool(name.value());
  if (!p) return bad("no pool '" + name.value() + "'");
  for (const auto& v : next.vdisks)
    if (v.pool_id == p->id)
      return bad("pool '" + name.value() + "' is used by vdisk '" + v.name + "'");
  next.pools.erase(next.pools.begin() + (p - next.pools.data()));
  if (auto st = commit(std::move(next)); !st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

// ---- vdisks ---------------------------------------------------------------

// New extents may hold a deleted vdisk's data: zero them before a host can
// read them.
Status ConfigService::zero_extents(const PoolConfig& pool,
                                   const std::vector<ExtentLoc>& extents) {
  std::set<uint32_t> touched;
  for (const auto& e : extents) {
    auto it = devices_.find(e.mdisk_id);
    if (it == devices_.end()) return make_error("mdisk offline", EIO);
    uint64_t offset = kMdiskReservedBytes + uint64_t{e.index} * pool.extent_bytes;
    if (auto st = it->second->zero_range(offset, pool.extent_bytes); !st) return st;
    touched.insert(e.mdisk_id);
  }
  for (uint32_t id : touched)
    if (auto st = devices_[id]->sync(); !st) return st;
  return ok_status();
}

Result<json> ConfigService::vdisk_create(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto pool_name = get_name(args, "pool");
  if (!pool_name) return pool_name.error();
  auto size = get_size(args, "size");
  if (!size) return size.error();
  ExtentPolicy policy = ExtentPolicy::striped;
  if (args.contains("policy") &&
      !(args["policy"].is_string() && parse_policy(args["policy"].get<std::string>(), policy)))
    return bad("policy must be 'striped' or 'sequential'");
  if (size.value() == 0 || size.value() % 512 != 0)
    return bad("vdisk size must be a positive multiple of 512 bytes");
  ClusterModel next = config_;
  if (next.find_vdisk(name.value())) return bad("vdisk '" + name.value() + "' exists");
  PoolConfig* pool = next.find_pool(pool_name.value());
  if (!pool) return bad("no pool '" + pool_name.value() + "'");
  for (uint32_t id : pool->mdisks)
    if (!devices_.count(id))
      return bad("pool '" + pool->name + "' has an offline mdisk");
  PoolUsage usage(next, *pool);
  uint32_t count = extents_for(size.value(), pool->extent_bytes);
  auto extents = usage.allocate(count, policy, pool->stripe_cursor);
  if (!extents)
    return make_error("pool '" + pool->name + "' cannot hold " + format_size(size.value()) +
                          ": " + extents.error().message,
                      ENOSPC);
  // Alone, the extents are zeroed before the commit. In a cluster another
  // node may be handing out the same free extents right now: they are
  // committed to this vdisk first, unexported, and zeroed after.
  if (!cluster_)
    if (auto st = zero_extents(*pool, extents.value()); !st) return st.error();
  VdiskConfig v;
  v.id = next.next_id++;
  v.name = name.value();
  v.pool_id = pool->id;
  v.size_bytes = size.value();
  v.policy = policy;
  v.extents = extents.value();
  v.formatted = !cluster_;
  if (auto st = place_vdisk(next, args, v); !st) return st.error();
  next.vdisks.push_back(v);
  PoolConfig pool_copy = *pool;
  if (auto st = commit(std::move(next)); !st) return st.error();
  if (cluster_) {
    if (auto st = zero_extents(pool_copy, extents.value()); !st)
      return make_error("vdisk '" + v.name + "' stays unformatted: " + st.error().message +
                            " (delete it and create it again)",
                        st.error().code);
    auto st = commit_change([&](ClusterModel& c) -> Status {
      VdiskConfig* mine = c.find_vdisk(v.name);
      if (!mine || mine->id != v.id)
        return make_error("vdisk '" + v.name + "' was deleted while it was formatted", ENOENT);
      mine->formatted = true;
      return ok_status();
    });
    if (!st)
      return make_error("vdisk '" + v.name + "' stays unformatted: " + st.error().message +
                            " (delete it and create it again)",
                        st.error().code);
    v.formatted = true;
  }
  spdlog::info("vdisk {} created: {} in pool {}", v.name, format_size(v.size_bytes),
               pool_name.value());
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
  return {{"name", v.name},
          {"id", v.id},
          {"status", v.formatted ? "online" : "formatting"},
          {"iogrp", g ? g->name : ""},
          {"preferred_node", v.preferred_node},
          {"pool", pool ? pool->name : "?"},
          {"size", v.size_bytes},
          {"policy", to_string(v.policy)},
          {"extent_size", pool ? pool->extent_bytes : 0},
          {"extent_count", v.extents.size()},
          {"extents_per_mdisk", per_mdisk},
          {"extents", extents}};
}

Result<json> ConfigService::vdisk_list() {
  json out = json::array();
  for (const auto& v : config_.vdisks) {
    json d = describe_vdisk(v);
    d.erase("extents");
    out.push_back(std::move(d));
  }
  return out;
}

Result<json> ConfigService::vdisk_show(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  VdiskConfig* v = config_.find_vdisk(name.value());
  if (!v) return bad("no vdisk '" + name.value() + "'");
  return describe_vdisk(*v);
}

Result<json> ConfigService::vdisk_expand(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto size = get_size(args, "size");
  if (!size) return size.error();
  ClusterModel next = config_;
  VdiskConfig* v = next.find_vdisk(name.value());
  if (!v) return bad("no vdisk '" + name.value() + "'");
  if (size.value() % 512 != 0) return bad("vdisk size must be a multiple of 512 bytes");
  if (size.value() < v->size_bytes)
    return bad("vdisk '" + name.value() + "' is " + format_size(v->size_bytes) +
               "; shrinking would destroy data and is not supported");
  PoolConfig* pool = next.find_pool(v->pool_id);
  uint32_t have = static_cast<uint32_t>(v->extents.size());
  uint32_t need = extents_for(size.value(), pool->extent_bytes);
  if (need > have) {
    PoolUsage usage(next, *pool);
    auto more = usage.allocate(need - have, v->policy, pool->stripe_cursor);
    if (!more)
      return make_error("pool '" + pool->name + "' cannot grow '" + v->name + "' to " +
                            format_size(size.value()) + ": " + more.error().message,
                        ENOSPC);
    if (cluster_) {
      // As at create: the extents are the vdisk's (beyond its size, where
      // no host reaches) before they are zeroed, and the size grows after.
      v->extents.insert(v->extents.end(), more->begin(), more->end());
      uint32_t id = v->id;
      PoolConfig pool_copy = *pool;
      if (auto st = commit(std::move(next)); !st) return st.error();
      if (auto st = zero_extents(pool_copy, more.value()); !st) return st.error();
      VdiskConfig grown;
      auto st = commit_change([&](ClusterModel& c) -> Status {
        VdiskConfig* mine = c.find_vdisk(name.value());
        if (!mine || mine->id != id || mine->extents.size() < need)
          return make_error("vdisk '" + name.value() + "' changed while it grew", ESTALE);
        mine->size_bytes = std::max(mine->size_bytes, size.value());
        grown = *mine;
        return ok_status();
      });
      if (!st) return st.error();
      return describe_vdisk(grown);
    }
    if (auto st = zero_extents(*pool, more.value()); !st) return st.error();
    v->extents.insert(v->extents.end(), more->begin(), more->end());
  }
  v->size_bytes = size.value();
  VdiskConfig copy = *v;
  if (auto st = commit(std::move(next)); !st) return st.error();
  return describe_vdisk(copy);
}

Result<json> ConfigService::vdisk_delete(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  ClusterModel next = config_;
  VdiskConfig* v = next.find_vdisk(name.value());
  if (!v) return bad("no vdisk '" + name.value() + "'");
  next.vdisks.erase(next.vdisks.begin() + (v - next.vdisks.data()));
  if (auto st = commit(std::move(next)); !st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

}  // namespace sve

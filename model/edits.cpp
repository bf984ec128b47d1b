// The admin commands' changes to the model (model/edits.hpp).
#include "model/edits.hpp"

#include <algorithm>
#include <cerrno>
#include <map>

#include "model/extent_allocator.hpp"
#include "model/fc_edits.hpp"
#include "model/host_edits.hpp"
#include "model/thin_geometry.hpp"
#include "util/size.hpp"

namespace sve {
namespace {

Error bad(std::string message) { return make_error(std::move(message), EINVAL); }

uint32_t extents_for(uint64_t size_bytes, uint64_t extent_bytes) {
  return static_cast<uint32_t>((size_bytes + extent_bytes - 1) / extent_bytes);
}

bool in_some_pool(const ClusterModel& model, uint32_t mdisk, std::string* pool = nullptr) {
  for (const auto& p : model.pools)
    if (std::count(p.mdisks.begin(), p.mdisks.end(), mdisk)) {
      if (pool) *pool = p.name;
      return true;
    }
  return false;
}

}  // namespace

// ---- mdisks ---------------------------------------------------------------

Result<uint32_t> add_mdisk(ClusterModel& model, const std::string& name, const std::string& path,
                           const std::string& uuid, uint64_t data_bytes) {
  if (model.find_mdisk(name)) return bad("mdisk '" + name + "' exists");
  for (const auto& m : model.mdisks)
    if (m.uuid == uuid) return bad(path + " is already mdisk " + m.name);
  MdiskConfig m;
  m.id = model.next_id++;
  m.name = name;
  m.path = path;
  m.uuid = uuid;
  m.data_bytes = data_bytes;
  model.mdisks.push_back(m);
  return m.id;
}

Result<uint32_t> reattach_mdisk(ClusterModel& model, const std::string& name,
                                const std::string& uuid, const std::string& path) {
  for (auto& m : model.mdisks) {
    if (m.uuid != uuid) continue;
    if (m.name != name)
      return bad(path + " is offline mdisk '" + m.name + "'; add it under that name to bring "
                 "it back");
    m.path = path;
    return m.id;
  }
  return uint32_t{0};
}

Result<uint32_t> remove_mdisk(ClusterModel& model, const std::string& name) {
  MdiskConfig* m = model.find_mdisk(name);
  if (!m) return bad("no mdisk '" + name + "'");
  std::string pool;
  if (in_some_pool(model, m->id, &pool))
    return bad("mdisk '" + name + "' is used by pool '" + pool + "'");
  uint32_t id = m->id;
  model.mdisks.erase(model.mdisks.begin() + (m - model.mdisks.data()));
  return id;
}

// ---- pools ----------------------------------------------------------------

namespace {

// The id of mdisk `mname` if it may join `pool` (which may not be in the
// model yet): it exists, is not named twice, is in no pool, is online and
// holds at least one of the pool's extents.
Result<uint32_t> usable_for_pool(ClusterModel& model, const PoolConfig& pool,
                                 const std::string& mname, const MdiskOnline& online) {
  const MdiskConfig* m = model.find_mdisk(mname);
  if (!m) return bad("no mdisk '" + mname + "'");
  std::string other;
  if (in_some_pool(model, m->id, &other))
    return bad("mdisk '" + mname + "' already belongs to pool '" + other + "'");
  if (std::count(pool.mdisks.begin(), pool.mdisks.end(), m->id))
    return bad("mdisk '" + mname + "' named twice");
  if (!online(m->id)) return bad("mdisk '" + mname + "' is offline");
  if (extent_slots(*m, pool.extent_bytes) == 0)
    return bad("mdisk '" + mname + "' (" + format_size(m->data_bytes) +
               ") is smaller than one extent of " + format_size(pool.extent_bytes));
  return m->id;
}

}  // namespace

Result<PoolConfig> create_pool(ClusterModel& model, const std::string& name,
                               uint64_t extent_bytes, const std::vector<std::string>& mdisks,
                               const MdiskOnline& online) {
  if (extent_bytes < kMinExtentBytes || extent_bytes > kMaxExtentBytes ||
      (extent_bytes & (extent_bytes - 1)))
    return bad("extent size must be a power of two from 1M to 8G, not " +
               format_size(extent_bytes));
  if (mdisks.empty()) return bad("a pool needs at least one mdisk");
  if (model.find_pool(name)) return bad("pool '" + name + "' exists");
  PoolConfig pool;
  pool.name = name;
  pool.extent_bytes = extent_bytes;
  for (const std::string& mname : mdisks) {
    auto id = usable_for_pool(model, pool, mname, online);
    if (!id) return id.error();
    pool.mdisks.push_back(id.value());
  }
  pool.id = model.next_id++;
  model.pools.push_back(pool);
  return pool;
}

Result<PoolConfig> add_pool_mdisks(ClusterModel& model, const std::string& name,
                                   const std::vector<std::string>& mdisks,
                                   const MdiskOnline& online) {
  PoolConfig* pool = model.find_pool(name);
  if (!pool) return bad("no pool '" + name + "'");
  if (mdisks.empty()) return bad("name at least one mdisk to add");
  for (auto it = mdisks.begin(); it != mdisks.end(); ++it)
    if (std::find(it + 1, mdisks.end(), *it) != mdisks.end())
      return bad("mdisk '" + *it + "' named twice");
  for (const std::string& mname : mdisks) {
    auto id = usable_for_pool(model, *pool, mname, online);
    if (!id) return id.error();
    pool->mdisks.push_back(id.value());
  }
  return *pool;
}

Status delete_pool(ClusterModel& model, const std::string& name) {
  PoolConfig* p = model.find_pool(name);
  if (!p) return bad("no pool '" + name + "'");
  for (const auto& v : model.vdisks)
    if (v.pool_id == p->id && !v.bitmap_of)  // (a mapping's bitmap goes with its source)
      return bad("pool '" + name + "' is used by vdisk '" + v.name + "'");
  model.pools.erase(model.pools.begin() + (p - model.pools.data()));
  return ok_status();
}

// ---- vdisks ---------------------------------------------------------------

Result<VdiskConfig> create_vdisk(ClusterModel& model, const NewVdisk& args,
                                 const MdiskOnline& online) {
  if (args.size_bytes == 0 || args.size_bytes % 512 != 0)
    return bad("vdisk size must be a positive multiple of 512 bytes");
  if (model.find_vdisk(args.name)) return bad("vdisk '" + args.name + "' exists");
  PoolConfig* pool = model.find_pool(args.pool);
  if (!pool) return bad("no pool '" + args.pool + "'");
  for (uint32_t id : pool->mdisks)
    if (!online(id)) return bad("pool '" + pool->name + "' has an offline mdisk");
  uint32_t count = extents_for(args.size_bytes, pool->extent_bytes);
  if (args.grain_bytes) {
    if (!valid_grain(args.grain_bytes))
      return bad("grain size must be 32K, 64K, 128K or 256K, not " +
                 format_size(args.grain_bytes));
    if (args.warning_pct > 100) return bad("warning must be a percentage from 0 to 100");
    if (args.rsize_pct && *args.rsize_pct > 100)
      return bad("real capacity must be a percentage from 0 to 100");
    uint64_t rsize = args.rsize_bytes ? *args.rsize_bytes
                                      : args.size_bytes / 100 * args.rsize_pct.value_or(2);
    uint64_t extents = (std::min(rsize, args.size_bytes) + pool->extent_bytes - 1) /
                       pool->extent_bytes;
    count = std::max<uint32_t>(static_cast<uint32_t>(extents),
                               thin_min_extents(args.size_bytes, args.grain_bytes,
                                                pool->extent_bytes));
  } else if (args.rsize_bytes || args.rsize_pct) {
    return bad("a real capacity (rsize) is for thin vdisks only: add --thin");
  }
  PoolUsage usage(model, *pool);
  auto extents = usage.allocate(count, args.policy, pool->stripe_cursor);
  if (!extents)
    return make_error("pool '" + pool->name + "' cannot hold " +
                          format_size(uint64_t{count} * pool->extent_bytes) + ": " +
                          extents.error().message,
                      ENOSPC);
  VdiskConfig v;
  v.name = args.name;
  v.pool_id = pool->id;
  v.size_bytes = args.size_bytes;
  v.policy = args.policy;
  v.extents = std::move(extents.value());
  v.formatted = args.formatted;
  v.grain_bytes = args.grain_bytes;
  if (args.grain_bytes) {
    v.warning_pct = args.warning_pct;
    v.autoexpand = args.autoexpand;
    uint64_t real = v.extents.size() * pool->extent_bytes;
    uint64_t meta = ThinGeometry{args.size_bytes, args.grain_bytes}.meta_bytes();
    v.contingency_bytes = real > meta ? real - meta : 0;
  }
  if (auto st = place_vdisk(model, args.placement, v); !st) return st.error();
  v.id = model.next_id++;
  model.vdisks.push_back(v);
  return v;
}

Status mark_formatted(ClusterModel& model, const std::string& name, uint32_t id) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v || v->id != id)
    return make_error("vdisk '" + name + "' was deleted while it was formatted", ENOENT);
  v->formatted = true;
  return ok_status();
}

Result<Expansion> expand_vdisk(ClusterModel& model, const std::string& name, uint64_t size_bytes,
                               bool extents_only) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v) return bad("no vdisk '" + name + "'");
  if (size_bytes % 512 != 0) return bad("vdisk size must be a multiple of 512 bytes");
  if (std::string why = fcmap_blocks_delete(model, v->id); !why.empty() && size_bytes != v->size_bytes)
    return bad("vdisk '" + name + "' cannot change size: " + why);
  if (size_bytes < v->size_bytes)
    return bad("vdisk '" + name + "' is " + format_size(v->size_bytes) +
               "; shrinking would destroy data and is not supported");
  if (v->thin() && size_bytes != v->size_bytes)
    return bad("vdisk '" + name + "' is thin: its virtual size cannot change yet (its map is "
               "sized by it); its real capacity grows by itself with autoexpand");
  PoolConfig* pool = model.find_pool(v->pool_id);
  if (!pool) return bad("vdisk '" + name + "' has no pool");
  Expansion out;
  out.extent_bytes = pool->extent_bytes;
  uint32_t have = static_cast<uint32_t>(v->extents.size());
  uint32_t need = extents_for(size_bytes, pool->extent_bytes);
  if (need > have) {
    PoolUsage usage(model, *pool);
    auto more = usage.allocate(need - have, v->policy, pool->stripe_cursor);
    if (!more)
      return make_error("pool '" + pool->name + "' cannot grow '" + v->name + "' to " +
                            format_size(size_bytes) + ": " + more.error().message,
                        ENOSPC);
    out.added = std::move(more.value());
    v->extents.insert(v->extents.end(), out.added.begin(), out.added.end());
  }
  if (!extents_only) v->size_bytes = size_bytes;
  out.vdisk = *v;
  return out;
}

Result<VdiskConfig> grow_to_extents(ClusterModel& model, const std::string& name, uint32_t id,
                                    uint64_t size_bytes) {
  VdiskConfig* v = model.find_vdisk(name);
  const PoolConfig* pool = v ? model.find_pool(v->pool_id) : nullptr;
  if (!v || v->id != id || !pool ||
      v->extents.size() < extents_for(size_bytes, pool->extent_bytes))
    return make_error("vdisk '" + name + "' changed while it grew", ESTALE);
  v->size_bytes = std::max(v->size_bytes, size_bytes);
  return *v;
}

bool valid_grain(uint64_t grain_bytes) {
  return grain_bytes >= kMinGrainBytes && grain_bytes <= kMaxGrainBytes &&
         (grain_bytes & (grain_bytes - 1)) == 0;
}

uint32_t thin_min_extents(uint64_t size_bytes, uint32_t grain_bytes, uint64_t extent_bytes) {
  // The map, then one grain.
  uint64_t meta = ThinGeometry{size_bytes, grain_bytes}.meta_bytes();
  return static_cast<uint32_t>((meta + grain_bytes + extent_bytes - 1) / extent_bytes);
}

Result<Expansion> grow_thin(ClusterModel& model, const std::string& name, uint32_t id,
                            uint32_t needed, uint32_t wanted) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v || v->id != id) return make_error("vdisk '" + name + "' changed meanwhile", ESTALE);
  if (!v->thin()) return bad("vdisk '" + name + "' is not thin");
  PoolConfig* pool = model.find_pool(v->pool_id);
  if (!pool) return bad("vdisk '" + name + "' has no pool");
  PoolUsage usage(model, *pool);
  needed = std::max<uint32_t>(needed, 1);
  if (usage.free_extents() < needed)
    return make_error("pool '" + pool->name + "' is out of space: it has " +
                          std::to_string(usage.free_extents()) + " free extents, '" + name +
                          "' needs " + std::to_string(needed),
                      ENOSPC);
  uint32_t count = static_cast<uint32_t>(
      std::min<uint64_t>(std::max(wanted, needed), usage.free_extents()));
  auto more = usage.allocate(count, v->policy, pool->stripe_cursor);
  if (!more) return make_error(more.error().message, ENOSPC);
  Expansion out;
  out.extent_bytes = pool->extent_bytes;
  out.added = std::move(more.value());
  v->extents.insert(v->extents.end(), out.added.begin(), out.added.end());
  out.vdisk = *v;
  return out;
}

Result<VdiskConfig> set_thin(ClusterModel& model, const std::string& name,
                             std::optional<uint32_t> warning_pct, std::optional<bool> autoexpand) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v) return bad("no vdisk '" + name + "'");
  if (!v->thin()) return bad("vdisk '" + name + "' is not thin");
  if (warning_pct && *warning_pct > 100) return bad("warning must be a percentage from 0 to 100");
  if (warning_pct) v->warning_pct = *warning_pct;
  if (autoexpand) v->autoexpand = *autoexpand;
  return *v;
}

Result<VdiskConfig> set_read_only(ClusterModel& model, const std::string& name,
                                  bool read_only) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v) return bad("no vdisk '" + name + "'");
  v->read_only = read_only;
  return *v;
}

Status delete_vdisk(ClusterModel& model, const std::string& name) {
  VdiskConfig* v = model.find_vdisk(name);
  if (!v) return bad("no vdisk '" + name + "'");
  if (std::string why = fcmap_blocks_delete(model, v->id); !why.empty())
    return bad("vdisk '" + name + "' cannot be deleted: " + why);
  if (std::string why = hostmap_blocks_delete(model, v->id); !why.empty())
    return make_error("vdisk '" + name + "' cannot be deleted: " + why, EBUSY);
  const uint32_t id = v->id;
  model.vdisks.erase(model.vdisks.begin() + (v - model.vdisks.data()));
  std::erase_if(model.reservations, [&](const VdiskReservations& r) { return r.vdisk == id; });
  return ok_status();
}

Status place_vdisk(const ClusterModel& model, const Placement& placement, VdiskConfig& v) {
  const IoGroupConfig* g = nullptr;
  if (placement.iogrp) {
    for (const auto& each : model.iogrps)
      if (each.name == *placement.iogrp) g = &each;
    if (!g) return bad("no I/O group '" + *placement.iogrp + "'");
  } else if (model.iogrps.size() == 1) {
    g = &model.iogrps.front();
  } else if (model.iogrps.size() > 1) {
    return bad("this cluster has several I/O groups: say which with --iogrp");
  }
  if (!g) {
    if (placement.node) return bad("--node needs an I/O group");
    v.iogrp_id = 0;
    v.preferred_node = 0;
    return ok_status();
  }
  uint32_t node = 0;
  if (placement.node) {
    node = *placement.node;
    if (!std::count(g->nodes.begin(), g->nodes.end(), node))
      return bad("node " + std::to_string(node) + " is not in I/O group '" + g->name + "'");
  } else {
    std::map<uint32_t, size_t> load;
    for (const auto& other : model.vdisks)
      if (other.iogrp_id == g->id && other.id != v.id) ++load[other.preferred_node];
    node = g->nodes.front();
    for (uint32_t n : g->nodes)
      if (load[n] < load[node]) node = n;
  }
  v.iogrp_id = g->id;
  v.preferred_node = node;
  return ok_status();
}

Result<VdiskConfig> move_vdisk(ClusterModel& model, const std::string& name,
                               const Placement& placement) {
  if (!placement.iogrp && !placement.node) return bad("vdisk move NAME --iogrp GROUP [--node N]");
  VdiskConfig* v = model.find_vdisk(name);
  if (!v) return bad("no vdisk '" + name + "'");
  // A mapping's vdisks are executed by one node (model/fc_edits.hpp).
  if (std::string why = fcmap_blocks_delete(model, v->id); !why.empty())
    return make_error("vdisk '" + name + "' cannot move: " + why, EBUSY);
  Placement where = placement;
  if (!where.iogrp) {  // a new preferred node in its own group
    const IoGroupConfig* g = model.find_iogrp(v->iogrp_id);
    if (!g) return bad("vdisk '" + name + "' is in no I/O group: name one with --iogrp");
    where.iogrp = g->name;
  }
  if (v->handover_from)
    return bad("vdisk '" + v->name + "' is still being handed over from node " +
               std::to_string(v->handover_from) + ": try again in a moment");
  // The node that executes its requests now (model/ownership.hpp) may hold
  // dirty blocks of it: the new owner waits for it to hand them over.
  uint32_t owner = 0, old_group = v->iogrp_id, old_partner = 0;
  if (const IoGroupConfig* old = model.find_iogrp(v->iogrp_id)) {
    owner = old->solo ? old->solo : v->preferred_node;
    // Writing back on both nodes: the other one holds a copy of every block
    // the owner has not destaged.
    if (!old->solo && old->nodes.size() == 2)
      old_partner = old->nodes[0] == owner ? old->nodes[1] : old->nodes[0];
  }
  if (auto st = place_vdisk(model, where, *v); !st) return st.error();
  const IoGroupConfig* now = model.find_iogrp(v->iogrp_id);
  uint32_t new_owner = now && now->solo ? now->solo : v->preferred_node;
  if (owner && owner != new_owner) {
    v->handover_from = owner;
    bool cross = old_group != v->iogrp_id;
    v->handover_group = cross ? old_group : 0;
    v->handover_partner = cross ? old_partner : 0;
  }
  return *v;
}

// ---- I/O groups -----------------------------------------------------------

Result<IoGroupConfig> create_iogrp(ClusterModel& model, const std::string& name,
                                   std::vector<uint32_t> nodes,
                                   const std::vector<uint32_t>& configured) {
  if (nodes.size() != 2) return bad("an I/O group has exactly two nodes: iogrp create NAME NODE NODE");
  if (nodes[0] == nodes[1]) return bad("an I/O group needs two different nodes");
  std::sort(nodes.begin(), nodes.end());
  for (uint32_t n : nodes)
    if (!std::count(configured.begin(), configured.end(), n))
      return bad("node " + std::to_string(n) + " is not a node of this cluster");
  if (model.find_iogrp(name)) return bad("I/O group '" + name + "' exists");
  for (const auto& g : model.iogrps)
    for (uint32_t n : nodes)
      if (std::count(g.nodes.begin(), g.nodes.end(), n))
        return bad("node " + std::to_string(n) + " is already in I/O group '" + g.name + "'");
  IoGroupConfig g{model.next_id++, name, nodes};
  // Cache epochs come from the id counter: unique across groups, so a copy
  // of a block never counts in a group it was not written in.
  g.cache_epoch = g.wb_epoch = model.next_id++;
  model.iogrps.push_back(g);
  return g;
}

Status delete_iogrp(ClusterModel& model, const std::string& name) {
  IoGroupConfig* g = model.find_iogrp(name);
  if (!g) return bad("no I/O group '" + name + "'");
  for (const auto& v : model.vdisks)
    if (v.iogrp_id == g->id && !v.bitmap_of)  // (a mapping's bitmap goes with its source)
      return bad("I/O group '" + name + "' serves vdisk '" + v.name +
                 "': move or delete it first");
  model.iogrps.erase(model.iogrps.begin() + (g - model.iogrps.data()));
  return ok_status();
}

}  // namespace sve

#include "cache/ownership.hpp"

#include <algorithm>

#include "virt/model.hpp"

namespace sve {

const VdiskRoute* RouteTable::find(uint32_t vdisk) const {
  auto it = vdisks.find(vdisk);
  return it == vdisks.end() ? nullptr : &it->second;
}

bool RouteTable::local(uint32_t vdisk) const {
  const VdiskRoute* r = find(vdisk);
  return !r || r->owner == self;
}

bool RouteTable::offline(uint32_t vdisk) const {
  const VdiskRoute* r = find(vdisk);
  return r && self != 0 && r->owner == 0;
}

namespace {

bool is_member(const RoutePolicy& policy, uint32_t id) {
  return std::find(policy.members.begin(), policy.members.end(), id) != policy.members.end();
}

// The mode of a group's vdisks on the node that owns them: `partner_up`
// whether the owner's partner is a member too.
NodeCacheMode group_mode(const IoGroupConfig& g, const RoutePolicy& policy, uint32_t owner) {
  uint32_t partner = g.nodes[0] == owner ? g.nodes[1] : g.nodes[0];
  if (!policy.cache) return {CacheMode::off, "no cache memory configured"};
  if (!is_member(policy, partner))
    return {CacheMode::write_through, "node " + std::to_string(partner) + " of I/O group " +
                                          g.name + " is offline: no second copy for writes"};
  if (!policy.mirror)
    return {CacheMode::write_through, "writes are not mirrored to the partner node yet"};
  return {CacheMode::write_back, "mirrored with node " + std::to_string(partner)};
}

}  // namespace

NodeCacheMode node_cache_mode(const NodeConfig& config, const RoutePolicy& policy) {
  if (policy.self == 0)
    return policy.cache ? NodeCacheMode{CacheMode::write_through,
                                        "a standalone node has no partner to mirror writes to"}
                        : NodeCacheMode{CacheMode::off, "no cache memory configured"};
  if (!policy.serving) return {CacheMode::off, "this node is not serving I/O now"};
  for (const IoGroupConfig& g : config.iogrps)
    if (g.nodes.size() == 2 && (g.nodes[0] == policy.self || g.nodes[1] == policy.self))
      return group_mode(g, policy, policy.self);
  return {CacheMode::off, "node " + std::to_string(policy.self) +
                              " is in no I/O group: it owns no vdisk"};
}

std::shared_ptr<const RouteTable> build_routes(const NodeConfig& config,
                                               const RoutePolicy& policy) {
  auto table = std::make_shared<RouteTable>();
  table->self = policy.self;
  table->generation = policy.generation;
  table->serving = policy.serving;
  if (!policy.serving) return table;
  auto member = [&](uint32_t id) { return is_member(policy, id); };
  for (const VdiskConfig& v : config.vdisks) {
    VdiskRoute r;
    if (policy.self == 0) {
      r.owner = 0;  // the standalone node itself (its id is 0)
      r.mode = policy.cache ? CacheMode::write_through : CacheMode::off;
      r.why = policy.cache ? "a standalone node has no partner to mirror writes to"
                           : "no cache memory configured";
      table->vdisks[v.id] = std::move(r);
      continue;
    }
    const IoGroupConfig* g = v.iogrp_id ? config.find_iogrp(v.iogrp_id) : nullptr;
    if (!g || g->nodes.size() != 2) {
      r.owner = policy.self;
      r.mode = CacheMode::off;
      r.why = "in no I/O group: every node serves it, uncached";
      table->vdisks[v.id] = std::move(r);
      continue;
    }
    uint32_t preferred = v.preferred_node ? v.preferred_node : g->nodes[0];
    uint32_t other = g->nodes[0] == preferred ? g->nodes[1] : g->nodes[0];
    bool p_up = member(preferred), o_up = member(other);
    if (!p_up && !o_up) {
      r.why = "I/O group " + g->name + " is offline: neither node " +
              std::to_string(preferred) + " nor node " + std::to_string(other) +
              " is in the cluster";
      table->vdisks[v.id] = std::move(r);
      continue;
    }
    r.owner = p_up ? preferred : other;
    r.partner = p_up && o_up ? other : 0;
    NodeCacheMode m = group_mode(*g, policy, r.owner);
    r.mode = m.mode;
    r.why = std::move(m.why);
    table->vdisks[v.id] = std::move(r);
  }
  return table;
}

}  // namespace sve

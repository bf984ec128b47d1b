#include "model/ownership.hpp"

#include <algorithm>

#include "model/model.hpp"

namespace sve {

const VdiskRoute* RouteTable::find(uint32_t vdisk) const {
  auto it = vdisks.find(vdisk);
  return it == vdisks.end() ? nullptr : &it->second;
}

bool RouteTable::local(uint32_t vdisk) const {
  const VdiskRoute* r = find(vdisk);
  return !r || (r->owner == self && !r->hold);
}

bool RouteTable::offline(uint32_t vdisk) const {
  const VdiskRoute* r = find(vdisk);
  return r && self != 0 && r->owner == 0;
}

bool copy_counts(const VdiskRoute& route, uint32_t self, uint64_t epoch) {
  if (route.handover_from == self) return true;
  if (route.handover_from && route.handover_partner == self) return true;
  if (route.group == 0) return false;
  if (route.solo == 0) return epoch == route.epoch;
  return route.solo == self && epoch == route.wb_epoch;
}

namespace {

bool is_member(const RoutePolicy& policy, uint32_t id) {
  return std::find(policy.members.begin(), policy.members.end(), id) != policy.members.end();
}

uint32_t other_node(const IoGroupConfig& g, uint32_t node) {
  return g.nodes[0] == node ? g.nodes[1] : g.nodes[0];
}

// How the group's vdisks are cached on `owner`, by the group's state.
NodeCacheMode group_mode(const IoGroupConfig& g, const RoutePolicy& policy, uint32_t owner) {
  uint32_t partner = other_node(g, owner);
  std::string name = "I/O group " + g.name;
  if (!policy.cache) return {CacheMode::off, "no cache memory configured"};
  if (g.solo == 0 && is_member(policy, partner))
    return {CacheMode::write_back, "mirrored with node " + std::to_string(partner)};
  if (g.solo == 0)
    return {CacheMode::write_through, "node " + std::to_string(partner) + " of " + name +
                                          " is offline: taking its vdisks over"};
  if (!is_member(policy, partner))
    return {CacheMode::write_through, "node " + std::to_string(partner) + " of " + name +
                                          " is offline: no second copy for writes"};
  return {CacheMode::write_through, "resynchronising with node " + std::to_string(partner) +
                                        ": destaging before writing back again"};
}

}  // namespace

NodeCacheMode node_cache_mode(const ClusterModel& config, const RoutePolicy& policy) {
  if (policy.self == 0)
    return policy.cache ? NodeCacheMode{CacheMode::write_through,
                                        "a standalone node has no partner to mirror writes to"}
                        : NodeCacheMode{CacheMode::off, "no cache memory configured"};
  if (!policy.serving) return {CacheMode::off, "this node is not serving I/O now"};
  for (const IoGroupConfig& g : config.iogrps) {
    if (g.nodes.size() != 2 || (g.nodes[0] != policy.self && g.nodes[1] != policy.self))
      continue;
    if (g.solo != 0 && g.solo != policy.self)
      return {CacheMode::off, "node " + std::to_string(g.solo) + " runs I/O group " + g.name +
                                  " alone until it has destaged"};
    return group_mode(g, policy, policy.self);
  }
  return {CacheMode::off, "node " + std::to_string(policy.self) +
                              " is in no I/O group: it owns no vdisk"};
}

namespace {

// Point-in-time copies (docs/flashcopy.md): from the prepare until the
// start, the source is written through, so that its cache empties and
// nothing written before the point in time is still above the copy facility
// when it starts. The target is written through while it is prepared (its
// dirty blocks go down), and not cached at all once it is clean (prepared)
// until the mapping is idle again: the copy facility changes it below the
// cache, and a block the cache kept from before would be stale.
void cache_modes_for_copies(const ClusterModel& config, RouteTable& table) {
  for (const FcMapConfig& f : config.fcmaps) {
    if (f.state == FcState::idle_or_copied) continue;
    bool source_through = f.state == FcState::preparing || f.state == FcState::prepared ||
                          f.state == FcState::starting;
    for (uint32_t id : {f.source, f.target}) {
      auto it = table.vdisks.find(id);
      if (it == table.vdisks.end()) continue;
      VdiskRoute& r = it->second;
      bool preparing = id == f.source ? source_through : f.state == FcState::preparing;
      // The partner stays named: it still holds copies of the blocks not
      // yet destaged, and is told to free them as they are.
      if (preparing && r.mode == CacheMode::write_back) {
        r.mode = CacheMode::write_through;
        r.why = "fcmap " + f.name + " is " + to_string(f.state) + ": written through until it starts";
      } else if (!preparing && id == f.target && r.mode != CacheMode::off) {
        r.mode = CacheMode::off;
        r.why = "the target of fcmap " + f.name + " (" + to_string(f.state) + "): not cached";
      }
    }
  }
}

}  // namespace

std::shared_ptr<const RouteTable> build_routes(const ClusterModel& config,
                                               const RoutePolicy& policy) {
  auto table = std::make_shared<RouteTable>();
  table->self = policy.self;
  table->generation = policy.generation;
  table->serving = policy.serving;
  if (!policy.serving) return table;
  for (const VdiskConfig& v : config.vdisks) {
    VdiskRoute r;
    if (policy.self == 0) {
      r.owner = 0;  // the standalone node itself (its id is 0)
      NodeCacheMode m = node_cache_mode(config, policy);
      r.mode = m.mode;
      r.why = std::move(m.why);
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
    r.group = g->id;
    r.epoch = g->cache_epoch;
    r.solo = g->solo;
    r.wb_epoch = g->wb_epoch;
    uint32_t preferred = v.preferred_node ? v.preferred_node : g->nodes[0];
    uint32_t other = other_node(*g, preferred);
    bool p_up = is_member(policy, preferred), o_up = is_member(policy, other);
    if (g->solo != 0) {
      if (!is_member(policy, g->solo)) {
        r.why = "I/O group " + g->name + " is offline: node " + std::to_string(g->solo) +
                " holds its only cached copies and is not in the cluster";
        table->vdisks[v.id] = std::move(r);
        continue;
      }
      r.owner = g->solo;
    } else if (p_up || o_up) {
      r.owner = p_up ? preferred : other;
      r.hold = !(p_up && o_up);  // until the survivor commits that it is alone
      if (r.owner == policy.self && g->cache_epoch == policy.untrusted_epoch) {
        r.hold = true;  // its copies of this epoch are gone: the partner's count
        r.why = "this node lost its cache memory: node " +
                std::to_string(other_node(*g, policy.self)) + " destages the group first";
        table->vdisks[v.id] = std::move(r);
        continue;
      }
    } else {
      r.why = "I/O group " + g->name + " is offline: neither node " +
              std::to_string(preferred) + " nor node " + std::to_string(other) +
              " is in the cluster";
      table->vdisks[v.id] = std::move(r);
      continue;
    }
    NodeCacheMode m = group_mode(*g, policy, r.owner);
    r.mode = m.mode;
    r.why = std::move(m.why);
    if (r.mode == CacheMode::write_back) r.partner = other_node(*g, r.owner);
    // Moved: its old owner destages first. Within a group, a node running
    // it alone holds every copy already, so no handover is waited for; from
    // another group, the copies are in that group's nodes whatever this
    // group's state.
    bool cross = v.handover_group && v.handover_group != g->id;
    if (v.handover_from && (g->solo == 0 || cross) && v.handover_from != r.owner) {
      r.handover_from = v.handover_from;
      r.handover_partner = cross ? v.handover_partner : 0;
      r.handover_by = v.handover_from;
      if (r.handover_partner && !is_member(policy, v.handover_from) &&
          is_member(policy, r.handover_partner))
        r.handover_by = r.handover_partner;
      r.hold = true;
      r.why = "waiting for node " + std::to_string(r.handover_by) +
              " to hand the vdisk over (destaging it)";
    }
    table->vdisks[v.id] = std::move(r);
  }
  cache_modes_for_copies(config, *table);
  return table;
}

bool apply_transition(ClusterModel& config, const GroupTransition& t) {
  IoGroupConfig* g = nullptr;
  for (auto& each : config.iogrps)
    if (each.id == t.group) g = &each;
  if (!g || g->cache_epoch != t.from_epoch) return false;
  if (t.solo && std::find(g->nodes.begin(), g->nodes.end(), t.solo) == g->nodes.end())
    return false;
  if (t.solo && !g->solo) g->wb_epoch = g->cache_epoch;  // the write-back epoch that ends
  g->cache_epoch = config.next_id++;
  if (!t.solo) {
    g->wb_epoch = g->cache_epoch;
    // The solo node destaged everything the group held before writing back
    // again: earlier handovers within the group have nothing left to hand
    // over. (A handover from another group is that group's to finish.) But
    // the vdisks that go back to their preferred node are a handover of
    // their own: the solo node serves them until it has applied this event,
    // and the other node may apply it first. It waits until the solo node
    // says it stopped (finish_handover), so that the two never both execute
    // a vdisk's requests.
    for (auto& v : config.vdisks) {
      if (v.iogrp_id != g->id || (v.handover_group && v.handover_group != g->id)) continue;
      v.handover_from = v.handover_group = v.handover_partner = 0;
      uint32_t preferred = v.preferred_node ? v.preferred_node : g->nodes[0];
      if (g->solo && preferred != g->solo) v.handover_from = g->solo;
    }
  }
  g->solo = t.solo;
  return true;
}

bool finish_handover(ClusterModel& config, uint32_t vdisk, uint32_t from) {
  for (auto& v : config.vdisks)
    if (v.id == vdisk && v.handover_from == from) {
      v.handover_from = v.handover_group = v.handover_partner = 0;
      return true;
    }
  return false;
}

std::vector<GroupTransition> due_transitions(const ClusterModel& config, const RoutePolicy& policy,
                                             const std::vector<uint32_t>& clean_groups) {
  std::vector<GroupTransition> out;
  if (policy.self == 0 || !policy.serving) return out;
  for (const IoGroupConfig& g : config.iogrps) {
    if (g.nodes.size() != 2 || (g.nodes[0] != policy.self && g.nodes[1] != policy.self))
      continue;
    uint32_t partner = other_node(g, policy.self);
    bool partner_up = is_member(policy, partner);
    // This node lost its copies of this epoch: the partner takes the group
    // over with its own, or nobody does.
    if (g.solo == 0 && g.cache_epoch == policy.untrusted_epoch) {
      if (partner_up) out.push_back({g.id, g.cache_epoch, partner});
      continue;
    }
    // The partner is gone: this node takes the group over, alone.
    if (g.solo == 0 && !partner_up) out.push_back({g.id, g.cache_epoch, policy.self});
    // Alone, everything destaged, the partner back: write back again.
    bool clean = std::find(clean_groups.begin(), clean_groups.end(), g.id) != clean_groups.end();
    if (g.solo == policy.self && partner_up && clean)
      out.push_back({g.id, g.cache_epoch, 0});
  }
  return out;
}

std::optional<ControlStep> next_control_step(
    const ClusterModel& config, const RoutePolicy& policy,
    const std::function<uint64_t(uint32_t group)>& dirty_in_group,
    const std::function<uint64_t(uint32_t vdisk)>& dirty_of_vdisk) {
  if (!policy.serving) return std::nullopt;
  std::vector<uint32_t> clean;
  for (const auto& g : config.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), policy.self) && dirty_in_group(g.id) == 0)
      clean.push_back(g.id);
  for (const GroupTransition& t : due_transitions(config, policy, clean)) {
    ClusterModel next = config;
    if (apply_transition(next, t))
      return ControlStep{std::move(next),
                         "I/O group " + std::to_string(t.group) +
                             (t.solo ? " run by node " + std::to_string(t.solo) + " alone"
                                     : " writing back on both nodes")};
  }
  // A handover this node cannot finish: it lost its copies. Its old group's
  // other node holds them; the handover is that node's now.
  for (uint32_t id : policy.lost_handovers) {
    for (const auto& v : config.vdisks) {
      if (v.id != id || v.handover_from != policy.self || !v.handover_partner) continue;
      ClusterModel next = config;
      for (auto& mine : next.vdisks)
        if (mine.id == id) {
          mine.handover_from = mine.handover_partner;
          mine.handover_partner = 0;
        }
      return ControlStep{std::move(next), "the handover of vdisk " + v.name + " to node " +
                                              std::to_string(v.handover_partner) +
                                              " (this node lost its copies)"};
    }
  }
  // The handovers this node is to finish. Its cache may not have taken the
  // copies over yet: any copy still held waits, as does any dirty block.
  auto table = build_routes(config, policy);
  for (const auto& v : config.vdisks) {
    const VdiskRoute* r = table->find(v.id);
    if (!v.handover_from || !r || r->handover_by != policy.self) continue;
    if (std::count(policy.lost_handovers.begin(), policy.lost_handovers.end(), v.id) &&
        v.handover_from == policy.self)
      continue;  // its copies are gone: never "done"
    if (dirty_of_vdisk(v.id) != 0) continue;
    ClusterModel next = config;
    if (finish_handover(next, v.id, v.handover_from))
      return ControlStep{std::move(next),
                         "the handover of vdisk " + v.name +
                             (v.handover_from == policy.self
                                  ? std::string()
                                  : " for node " + std::to_string(v.handover_from))};
  }
  return std::nullopt;
}

std::vector<uint32_t> handovers_from(const ClusterModel& config, uint32_t self) {
  std::vector<uint32_t> out;
  for (const auto& v : config.vdisks)
    if (v.handover_from == self) out.push_back(v.id);
  return out;
}

uint64_t group_epoch_of(const ClusterModel& config, uint32_t self) {
  for (const IoGroupConfig& g : config.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), self)) return g.cache_epoch;
  return 0;
}

}  // namespace sve

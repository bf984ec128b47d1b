// I/O groups: pairs of nodes that serve a set of vdisks together, and where
// each vdisk goes. Cluster configuration like the rest of the model; the
// cache that will be mirrored inside a group is the next issue's.
#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

#include "model/ownership.hpp"
#include "cluster/config_args.hpp"
#include "cluster/config_service.hpp"

namespace sve {

using nlohmann::json;
using namespace config_args;

Result<json> ConfigService::iogrp_create(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  if (!cluster_) return bad("I/O groups pair cluster nodes: this node stands alone");
  auto it = args.find("nodes");
  if (it == args.end() || !it->is_array() || it->size() != 2 ||
      !(*it)[0].is_number_unsigned() || !(*it)[1].is_number_unsigned())
    return bad("an I/O group has exactly two nodes: iogrp create NAME NODE NODE");
  std::vector<uint32_t> nodes = {(*it)[0].get<uint32_t>(), (*it)[1].get<uint32_t>()};
  if (nodes[0] == nodes[1]) return bad("an I/O group needs two different nodes");
  std::sort(nodes.begin(), nodes.end());
  std::vector<uint32_t> configured = cluster_->nodes();
  for (uint32_t n : nodes)
    if (!std::count(configured.begin(), configured.end(), n))
      return bad("node " + std::to_string(n) + " is not a node of this cluster");
  ClusterModel next = config_;
  if (next.find_iogrp(name.value())) return bad("I/O group '" + name.value() + "' exists");
  for (const auto& g : next.iogrps)
    for (uint32_t n : nodes)
      if (std::count(g.nodes.begin(), g.nodes.end(), n))
        return bad("node " + std::to_string(n) + " is already in I/O group '" + g.name + "'");
  IoGroupConfig g{next.next_id++, name.value(), nodes};
  // Cache epochs come from the id counter: unique across groups, so a
  // copy of a block never counts in a group it was not written in.
  g.cache_epoch = g.wb_epoch = next.next_id++;
  next.iogrps.push_back(g);
  if (auto st = commit(std::move(next)); !st) return st.error();
  return json{{"name", g.name}, {"id", g.id}, {"nodes", g.nodes}};
}

Result<json> ConfigService::iogrp_list() {
  json out = json::array();
  for (const auto& g : config_.iogrps) {
    std::map<uint32_t, size_t> preferred;
    size_t vdisks = 0;
    for (const auto& v : config_.vdisks)
      if (v.iogrp_id == g.id) {
        ++vdisks;
        ++preferred[v.preferred_node];
      }
    json per_node = json::object();
    for (uint32_t n : g.nodes) per_node[std::to_string(n)] = preferred[n];
    out.push_back({{"name", g.name},
                   {"id", g.id},
                   {"nodes", g.nodes},
                   {"vdisks", vdisks},
                   {"preferred_vdisks", per_node}});
  }
  return out;
}

Result<json> ConfigService::iogrp_delete(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  ClusterModel next = config_;
  IoGroupConfig* g = next.find_iogrp(name.value());
  if (!g) return bad("no I/O group '" + name.value() + "'");
  for (const auto& v : next.vdisks)
    if (v.iogrp_id == g->id)
      return bad("I/O group '" + name.value() + "' serves vdisk '" + v.name +
                 "': move or delete it first");
  next.iogrps.erase(next.iogrps.begin() + (g - next.iogrps.data()));
  if (auto st = commit(std::move(next)); !st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

// A vdisk goes to the group named (or the only one there is), and prefers
// the node named (or the group's node that is preferred by fewer vdisks).
Status ConfigService::place_vdisk(const ClusterModel& config, const json& args, VdiskConfig& v) {
  const IoGroupConfig* g = nullptr;
  if (args.contains("iogrp")) {
    auto name = get_name(args, "iogrp");
    if (!name) return name.error();
    for (const auto& each : config.iogrps)
      if (each.name == name.value()) g = &each;
    if (!g) return bad("no I/O group '" + name.value() + "'");
  } else if (config.iogrps.size() == 1) {
    g = &config.iogrps.front();
  } else if (config.iogrps.size() > 1) {
    return bad("this cluster has several I/O groups: say which with --iogrp");
  }
  if (!g) {
    if (args.contains("node")) return bad("--node needs an I/O group");
    v.iogrp_id = 0;
    v.preferred_node = 0;
    return ok_status();
  }
  uint32_t node = 0;
  if (args.contains("node")) {
    if (!args["node"].is_number_unsigned()) return bad("--node takes a node id");
    node = args["node"].get<uint32_t>();
    if (!std::count(g->nodes.begin(), g->nodes.end(), node))
      return bad("node " + std::to_string(node) + " is not in I/O group '" + g->name + "'");
  } else {
    std::map<uint32_t, size_t> load;
    for (const auto& other : config.vdisks)
      if (other.iogrp_id == g->id && other.id != v.id) ++load[other.preferred_node];
    node = g->nodes.front();
    for (uint32_t n : g->nodes)
      if (load[n] < load[node]) node = n;
  }
  v.iogrp_id = g->id;
  v.preferred_node = node;
  return ok_status();
}

// Online: hosts keep their connections; the cache's handover between nodes
// (next issue) will ride on this event.
Result<json> ConfigService::vdisk_move(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  if (!args.contains("iogrp") && !args.contains("node"))
    return bad("vdisk move NAME --iogrp GROUP [--node N]");
  ClusterModel next = config_;
  VdiskConfig* v = next.find_vdisk(name.value());
  if (!v) return bad("no vdisk '" + name.value() + "'");
  json where = args;
  if (!args.contains("iogrp")) {  // a new preferred node in its own group
    const IoGroupConfig* g = next.find_iogrp(v->iogrp_id);
    if (!g) return bad("vdisk '" + name.value() + "' is in no I/O group: name one with --iogrp");
    where["iogrp"] = g->name;
  }
  if (v->handover_from)
    return bad("vdisk '" + v->name + "' is still being handed over from node " +
               std::to_string(v->handover_from) + ": try again in a moment");
  // The node that executes its requests now (model/ownership.hpp) may hold
  // dirty blocks of it: the new owner waits for it to hand them over.
  uint32_t owner = 0, old_group = v->iogrp_id, old_partner = 0;
  if (const IoGroupConfig* old = next.find_iogrp(v->iogrp_id)) {
    owner = old->solo ? old->solo : v->preferred_node;
    // Writing back on both nodes: the other one holds a copy of every block
    // the owner has not destaged.
    if (!old->solo && old->nodes.size() == 2)
      old_partner = old->nodes[0] == owner ? old->nodes[1] : old->nodes[0];
  }
  if (auto st = place_vdisk(next, where, *v); !st) return st.error();
  const IoGroupConfig* now = next.find_iogrp(v->iogrp_id);
  uint32_t new_owner = now && now->solo ? now->solo : v->preferred_node;
  if (owner && owner != new_owner) {
    v->handover_from = owner;
    bool cross = old_group != v->iogrp_id;
    v->handover_group = cross ? old_group : 0;
    v->handover_partner = cross ? old_partner : 0;
  }
  VdiskConfig moved = *v;
  if (auto st = commit(std::move(next)); !st) return st.error();
  return describe_vdisk(moved);
}

}  // namespace sve

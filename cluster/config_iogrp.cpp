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
      !(*it)[0].is_number_unsigned() || !(*it)[1].is_number_unsigned() ||
      (*it)[0].get<uint64_t>() > UINT32_MAX || (*it)[1].get<uint64_t>() > UINT32_MAX)
    return bad("an I/O group has exactly two nodes: iogrp create NAME NODE NODE");
  std::vector<uint32_t> nodes = {(*it)[0].get<uint32_t>(), (*it)[1].get<uint32_t>()};
  std::vector<uint32_t> configured = cluster_->nodes();
  IoGroupConfig g;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto created = create_iogrp(next, name.value(), nodes, configured);
    if (!created) return created.error();
    g = created.value();
    return ok_status();
  });
  if (!st) return st.error();
  return json{{"name", g.name}, {"id", g.id}, {"nodes", g.nodes}};
}

Result<json> ConfigService::iogrp_list() {
  json out = json::array();
  for (const auto& g : config_.iogrps) {
    std::map<uint32_t, size_t> preferred;
    size_t vdisks = 0;
    for (const auto& v : config_.vdisks)
      if (v.iogrp_id == g.id && !v.bitmap_of) {  // (a mapping's bitmap is not a host's)
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
  auto st = commit_change([&](ClusterModel& next) { return delete_iogrp(next, name.value()); });
  if (!st) return st.error();
  return json{{"name", name.value()}, {"deleted", true}};
}

// Online: hosts keep their connections; the cache hands the vdisk's dirty
// blocks over from the old owner (model/edits.cpp, model/ownership.hpp).
Result<json> ConfigService::vdisk_move(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto placement = get_placement(args);
  if (!placement) return placement.error();
  VdiskConfig moved;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto v = move_vdisk(next, name.value(), placement.value());
    if (!v) return v.error();
    moved = v.value();
    return ok_status();
  });
  if (!st) return st.error();
  return describe_vdisk(moved);
}

}  // namespace sve

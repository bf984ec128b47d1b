#include "model/host_paths.hpp"

#include <algorithm>

namespace sve {

const char* path_state_name(PathState s) {
  switch (s) {
    case PathState::optimized: return "active/optimized";
    case PathState::non_optimized: return "active/non-optimized";
    case PathState::transitioning: return "transitioning";
    case PathState::unavailable: return "unavailable";
  }
  return "?";
}

const std::vector<NodePath>* HostPaths::find(uint32_t vdisk) const {
  auto it = vdisks.find(vdisk);
  return it == vdisks.end() ? nullptr : &it->second;
}

std::shared_ptr<const HostPaths> build_host_paths(const ClusterModel& config,
                                                  const RoutePolicy& policy,
                                                  const RouteTable& routes) {
  auto paths = std::make_shared<HostPaths>();
  paths->self = policy.self;
  if (policy.self == 0) return paths;  // standalone: every vdisk here, optimized
  auto member = [&](uint32_t node) {
    return std::find(policy.members.begin(), policy.members.end(), node) !=
           policy.members.end();
  };
  for (const VdiskConfig& v : config.vdisks) {
    if (v.bitmap_of) continue;  // not a host's
    const IoGroupConfig* g = v.iogrp_id ? config.find_iogrp(v.iogrp_id) : nullptr;
    if (g && g->nodes.size() != 2) g = nullptr;  // (served as in no group: model/ownership.hpp)
    const uint32_t preferred = !g ? 0 : v.preferred_node ? v.preferred_node : g->nodes[0];
    std::vector<uint32_t> nodes;
    if (policy.serving) nodes = policy.members;
    if (g) nodes.insert(nodes.end(), g->nodes.begin(), g->nodes.end());
    nodes.push_back(policy.self);
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    const VdiskRoute* route = routes.find(v.id);
    std::vector<NodePath>& out = paths->vdisks[v.id];
    for (uint32_t node : nodes) {
      NodePath p{node, PathState::unavailable, g && node == preferred};
      // Without a lease this node knows only that it serves nothing.
      if (!policy.serving) {
        if (node == policy.self) out.push_back(p);
        continue;
      }
      if (!route || route->owner == 0 || !member(node)) {
        p.state = PathState::unavailable;
      } else if (!g) {
        p.state = PathState::optimized;  // every node serves it itself, uncached
      } else if (route->owner == node) {
        p.state = route->hold ? PathState::transitioning : PathState::optimized;
      } else {
        p.state = PathState::non_optimized;
      }
      out.push_back(p);
    }
  }
  return paths;
}

}  // namespace sve

#pragma once
// How each node's host ports reach each vdisk (SCSI's ALUA, docs/iscsi.md):
// a pure function of the committed model, this node's cluster view and the
// route table built from them (model/ownership.hpp), so that every node of
// one generation tells hosts the same. The vdisk's owner serves it itself
// (optimized); any other node that serves in the generation forwards to the
// owner (non-optimized); the owner while it holds requests, taking the vdisk
// over, is transitioning; a node of the vdisk's I/O group that is out, a
// vdisk no node may execute, and every vdisk of a node without a lease are
// unavailable. A host that follows it sends to the owner.
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "model/ownership.hpp"

namespace sve {

enum class PathState : uint8_t { optimized, non_optimized, transitioning, unavailable };

const char* path_state_name(PathState s);

struct NodePath {
  uint32_t node = 0;       // 0: a standalone node
  PathState state = PathState::optimized;
  bool preferred = false;  // the vdisk's preferred node
  bool operator==(const NodePath&) const = default;
};

struct HostPaths {
  uint32_t self = 0;
  // By vdisk: the nodes that can be asked about it, by node id. A vdisk
  // missing here (a standalone node's, or one newer than the table) is
  // served by this node alone, optimized.
  std::unordered_map<uint32_t, std::vector<NodePath>> vdisks;
  const std::vector<NodePath>* find(uint32_t vdisk) const;
};

std::shared_ptr<const HostPaths> build_host_paths(const ClusterModel& config,
                                                  const RoutePolicy& policy,
                                                  const RouteTable& routes);

}  // namespace sve

#pragma once
// Which node executes each vdisk's requests, and how it caches them: a pure
// function of the committed model (I/O groups, preferred nodes) and of the
// members of the cluster generation this node is serving in. Every node of
// one generation computes the same table, and a generation opens only after
// the leases of the nodes it left out have run out, so ownership moves by
// cluster event, never by guesswork: two nodes never both believe they own
// a vdisk while both hold a lease.
//
//   in an I/O group  owned by its preferred node while that node is a member,
//                    else by the group's other node; offline if neither is.
//                    Both members: the cache may write back (mirrored);
//                    one: it writes through on the survivor.
//   in no group      every node serves it, uncached (no single owner to
//                    keep one cache coherent)
//   standalone node  the node owns everything; writes through (no partner)
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_mode.hpp"

namespace sve {

struct NodeConfig;

struct VdiskRoute {
  uint32_t owner = 0;    // the node that executes its requests; 0: offline
  uint32_t partner = 0;  // the other node of its group, if a member; else 0
  CacheMode mode = CacheMode::off;
  std::string why;       // why the mode (or the vdisk's state) is what it is
};

// A standalone node has id 0 and owns every vdisk (owner 0 is itself).
struct RouteTable {
  uint32_t self = 0;  // this node's id; 0 for a standalone node
  uint64_t generation = 0;
  // False while a cluster node holds no lease: it executes nothing, and its
  // cache lets go of everything (another node may own it all by now).
  bool serving = true;
  std::unordered_map<uint32_t, VdiskRoute> vdisks;
  // The route of a vdisk, or null if the model has no such vdisk.
  const VdiskRoute* find(uint32_t vdisk) const;
  // Whether this node executes the vdisk's requests itself (true for a
  // vdisk it does not know: the layers below refuse those).
  bool local(uint32_t vdisk) const;
  // Whether no node may execute them now.
  bool offline(uint32_t vdisk) const;
};

struct RoutePolicy {
  uint32_t self = 0;              // 0: a standalone node
  uint64_t generation = 0;
  bool serving = true;            // false: no lease, the table is empty
  std::vector<uint32_t> members;  // of the generation this node serves in
  bool cache = true;              // the node has cache memory
  bool mirror = false;            // write-back is possible (partners mirror)
};

std::shared_ptr<const RouteTable> build_routes(const NodeConfig& config,
                                               const RoutePolicy& policy);

// How this node caches what it owns, and why: by its I/O group's state.
struct NodeCacheMode {
  CacheMode mode = CacheMode::off;
  std::string why;
};
NodeCacheMode node_cache_mode(const NodeConfig& config, const RoutePolicy& policy);

}  // namespace sve

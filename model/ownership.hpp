#pragma once
// Which node executes each vdisk's requests, and how it caches them: a pure
// function of the committed model (I/O groups, preferred nodes) and of the
// members of the cluster generation this node is serving in. Every node of
// one generation computes the same table, and a generation opens only after
// the leases of the nodes it left out have run out, so ownership moves by
// cluster event, never by guesswork: two nodes never both believe they own
// a vdisk while both hold a lease.
//
//   in an I/O group  by the group's cache state (IoGroupConfig), which only
//                    committed events change:
//                    - both nodes cache (solo 0), both members: owned by its
//                      preferred node, written back, mirrored to the other.
//                    - solo 0, one member: that node must first commit that
//                      it runs the group alone; until then its requests wait
//                      (hold), because the other's copies still count.
//                    - solo N, N a member: owned by N, written through, while
//                      N destages what the group had cached; once that is
//                      done and the partner is back, N commits solo 0.
//                    - otherwise the group is offline.
//   in no group      every node serves it, uncached (no single owner to
//                    keep one cache coherent)
//   standalone node  the node owns everything; writes through (no partner)
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/cache_mode.hpp"
#include "model/model.hpp"

namespace sve {

struct VdiskRoute {
  uint32_t owner = 0;    // the node that executes its requests; 0: offline
  uint32_t partner = 0;  // where writes are mirrored (write-back only); else 0
  CacheMode mode = CacheMode::off;
  bool hold = false;     // the owner may not execute them yet (taking over)
  std::string why;       // why the mode (or the vdisk's state) is what it is
  // A move changed its owner: the old owner, which destages what it holds
  // of the vdisk (its copies count), while the new one holds its requests.
  uint32_t handover_from = 0;
  // Moved from another I/O group: the other node of the old owner's group,
  // whose copies count too (no write reaches the vdisk during a handover);
  // and the node that destages it for the handover now: the old owner, or
  // that other node while the old owner is out of the cluster.
  uint32_t handover_partner = 0;
  uint32_t handover_by = 0;
  // The group's cache state (0s for a vdisk in no group).
  uint32_t group = 0;
  uint64_t epoch = 0;
  uint32_t solo = 0;
  uint64_t wb_epoch = 0;
};

// Whether a non-volatile copy of one of the vdisk's blocks, written in
// cache epoch `epoch`, still counts on node `self`: in write-back, copies of
// the current epoch; when a node runs the group alone, that node's copies of
// the write-back epoch that ended; on the old owner of a vdisk being handed
// over (and, moved from another group, on that group's other node), all of
// its copies. Anything else has been destaged by the node that
// took over, and may be older than what the back end holds now.
bool copy_counts(const VdiskRoute& route, uint32_t self, uint64_t epoch);

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
  // Whether this node executes the vdisk's requests itself now (true for a
  // vdisk it does not know: the layers below refuse those; false while it
  // holds them, taking the vdisk over).
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
  // This node started with its non-volatile memory empty (lost, or new):
  // the copies it held in its group's cache epoch `untrusted_epoch` (the
  // one in force when it first served again) are gone, though the epoch
  // says they count. While that epoch lasts it owns nothing (its requests
  // wait) and it asks that its partner run the group alone, destaging the
  // copies it holds of this node's writes; a later epoch is trusted again.
  // 0: nothing lost.
  uint64_t untrusted_epoch = 0;
  // The vdisks this node was handing over to another group then: its copies
  // of them are gone too, so their handover passes to the old group's other
  // node (which holds copies of them), or stays stuck if there is none.
  std::vector<uint32_t> lost_handovers;
};

// The vdisks node `self` hands over (for RoutePolicy::lost_handovers).
std::vector<uint32_t> handovers_from(const ClusterModel& config, uint32_t self);

// A change of an I/O group's cache state this node should commit now (it
// is the node the change is about), or none.
struct GroupTransition {
  uint32_t group = 0;
  uint64_t from_epoch = 0;  // committed only if the group is still there
  uint32_t solo = 0;
};
// Applies a transition to the model (a new epoch from the id counter);
// false, leaving it alone, if the group is gone or its epoch moved on.
bool apply_transition(ClusterModel& config, const GroupTransition& t);
// Clears a moved vdisk's handover from node `from`; false if there is none.
bool finish_handover(ClusterModel& config, uint32_t vdisk, uint32_t from);

// `clean(group)`: whether this node holds no dirty data of the group.
std::vector<GroupTransition> due_transitions(const ClusterModel& config, const RoutePolicy& policy,
                                             const std::vector<uint32_t>& clean_groups);

// The one change of the model this node should commit now, as its cache
// controller (node/cache_controller.cpp) decides it: an I/O group's cache
// state moving on (a node runs it alone, or both write back again), or a
// handover this node finishes (its own, or one it does for an old owner that
// is out). `dirty_in_group(g)` and `dirty_of_vdisk(v)` count the blocks this
// node still holds that count: dirty blocks, and for a vdisk copies not yet
// taken over too. None: nothing to do now.
struct ControlStep {
  ClusterModel next;
  std::string what;  // for the log
};
std::optional<ControlStep> next_control_step(
    const ClusterModel& config, const RoutePolicy& policy,
    const std::function<uint64_t(uint32_t group)>& dirty_in_group,
    const std::function<uint64_t(uint32_t vdisk)>& dirty_of_vdisk);

// The cache epoch of the I/O group `self` is in, or 0 (for
// RoutePolicy::untrusted_epoch).
uint64_t group_epoch_of(const ClusterModel& config, uint32_t self);

std::shared_ptr<const RouteTable> build_routes(const ClusterModel& config,
                                               const RoutePolicy& policy);

// How this node caches what it owns, and why: by its I/O group's state.
struct NodeCacheMode {
  CacheMode mode = CacheMode::off;
  std::string why;
};
NodeCacheMode node_cache_mode(const ClusterModel& config, const RoutePolicy& policy);

}  // namespace sve

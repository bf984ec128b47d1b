#pragma once
// A deterministic simulator for the cluster protocol core: N nodes, a
// virtual clock (each node's own clock runs at a slightly different rate), a
// network that loses, delays, duplicates and reorders messages and can be
// partitioned (also one way), and crashes that lose a node's memory but keep
// its durable state. Half the seeds add a quorum device (a shared record
// every node reaches) and may then run 2 or 4 nodes. Everything random comes from one seed, so a run replays
// exactly. Faults "swarm": each seed picks its own loss rate, delays,
// partition and crash pattern.
//
// Invariants checked after every step:
//   * one membership per generation id, wherever it was joined;
//   * committed events identical, in order, on every node, and no payload
//     committed twice (a proposal is resent until it commits);
//   * all nodes holding a valid lease at one instant are in one generation
//     (a partition that must stop a node has stopped it before another
//     generation serves);
//   * durable state is whole: the committed prefix is in the log, the state
//     copies A and B are at most one event apart (A ahead), and a live node
//     has applied every committed event;
//   * every node's cluster state after event n is the same (with power
//     failures in the middle of applying an event, between copy A and B);
//   * a response passes a call gate only on its target node, only while it
//     is online, and only once.
// and at the end, once the network is healed and every node is back (in
// half the seeds all but one, perhaps the boss):
//   * progress: one generation of the nodes that are up is open and an event
//     proposed after the heal is committed on every one of them;
//   * no proposal lost: each one a node took is committed unless that node
//     forgot it since (crash, removal, snapshot), and none is still resent.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cluster/protocol/cluster_core.hpp"

namespace sve::cluster::sim {

struct SimResult {
  bool ok = true;
  std::string failure;  // what broke, and when
  uint64_t commits = 0;
  uint64_t generations = 0;
  uint64_t messages = 0;
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t responses = 0;  // passed by call gates
  uint64_t snapshots = 0;  // installed by nodes behind the log
  uint64_t membership_changes = 0;  // committed node additions and removals
  uint64_t removals = 0;   // nodes that forgot the cluster on being removed
};

struct SimOptions {
  uint64_t seed = 1;
  uint64_t fault_ms = 8000;   // faults happen until then
  uint64_t settle_ms = 8000;  // then everything heals; progress must follow
  CoreConfig core;            // the protocol's timing, for every node
  unsigned nodes = 0;         // 0: the seed picks 3 to 5
  bool scripted = false;      // no random faults: a ScriptedCluster drives it
  bool quorum_device = false; // scripted runs: whether there is one
  // Nodes start outside any cluster (as sved does); committed events
  // "nodes:1,2,3" change the configured nodes, as node add/remove do.
  bool fresh = false;
  // A negative control: the harness around the protocol deliberately broken,
  // so a test can show that the invariant it breaks is caught. One of:
  //   "gate_ignores_lease"  the call gate lets responses pass while offline
  //   "copy_b_first"        the state copies are written B first, then A
  //   "durable_lost"        a node's durable writes are now and then lost
  //   "state_per_node"      the cluster state an event leaves differs by node
  // (A protocol that skips the lease wait is CoreConfig::lease_margin = 0.)
  std::string broken;
};

SimResult run_simulation(const SimOptions& options);

// A clean simulated cluster that a test drives step by step (same invariant
// checks after every step): for scenarios such as "the boss dies".
class ScriptedCluster {
 public:
  explicit ScriptedCluster(unsigned nodes, CoreConfig core = {}, bool quorum_device = false,
                           bool fresh = false);
  ~ScriptedCluster();
  void run_for(uint64_t ms);
  void crash(NodeId id);
  void restart(NodeId id);
  void isolate(NodeId id);  // cut every link of `id`, both ways
  void heal();
  ClusterCore* node(NodeId id);  // null while crashed
  bool propose(NodeId id, const std::string& payload);
  bool committed_anywhere(const std::string& payload) const;
  // Every committed event, seq -> payload (the same on every node that has
  // committed that far: ClusterCore::committed() says how far each has).
  const std::map<uint64_t, std::string>& committed_events() const;
  uint64_t now() const;  // the simulator's clock, ms
  const SimResult& result() const;  // ok unless an invariant broke

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve::cluster::sim

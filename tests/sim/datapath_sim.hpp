#pragma once
// A deterministic simulator for the data path of a cluster: two or four
// nodes, each with the real forward, cache and virtualization facilities
// (one core each), over a simulated wire (delays, reordering, lost
// connections) and a simulated shared back end (delays, stalls, errors, and
// writes in flight at a crash that land or not). Who owns each vdisk comes
// from the real cluster protocol core, run by the cluster simulator
// (tests/sim/cluster_sim.hpp) on the same clock: its generations, members
// and leases, and its committed events carrying the model's changes (the I/O
// groups' cache transitions and handovers, decided by each node's cache
// controller step, model/ownership.hpp; vdisk moves, model/edits.hpp).
//
// Faults, seeded: a node crashes with its non-volatile memory kept or lost
// (lost only while every write has a copy on two nodes: every node serving,
// every group writing back on both, no node's copies untrusted; the design
// keeps two copies, not three), restarts, has only its I/O process
// restarted (its cluster core goes on: same generation, same epoch; the new
// process's back end holds its changes a while, as the real one does), is
// cut off from the others, and vdisks move within and across I/O groups
// while hosts write. Everything random comes from one
// seed, so a failing seed replays exactly.
//
// The checker: hosts write and read through every node; each 4 KiB block
// carries the id of the write that wrote it. A read must return, for every
// block, the last acknowledged write or one not acknowledged since (failed,
// or lost with its node) — after every takeover, handover and move. At the
// end everything heals and every node returns: the groups must write back on
// both nodes again, no handover may be left, and every block must read back.
#include <cstdint>
#include <string>
#include <vector>

namespace sve::datapath_sim {

struct DpOptions {
  uint64_t seed = 1;
  unsigned nodes = 0;         // 0: the seed picks 2 or 4
  uint64_t fault_ms = 3000;   // faults and moves until then
  uint64_t settle_ms = 4000;  // then all heals; the cluster must settle in this
  // A scripted run instead of seeded faults: one of scenarios().
  std::string scenario;
  // A negative control: the harness deliberately broken, so a test can show
  // the checker catches what it breaks. One of:
  //   "mirror_fakes_success"  the partner answers a copy it never stored
  //   "no_hold"               a new owner serves before it has taken over
  std::string broken;
  bool trace = false;
};

struct DpResult {
  bool ok = true;
  std::string failure;  // what broke, when, and the seed
  uint64_t writes_acked = 0;
  uint64_t reads_checked = 0;
  uint64_t blocks_checked = 0;
  uint64_t io_errors = 0;   // requests that failed (allowed, never silently)
  uint64_t crashes = 0;
  uint64_t io_restarts = 0;  // I/O processes restarted within their generation
  uint64_t nvram_lost = 0;
  uint64_t isolations = 0;
  uint64_t moves = 0;       // committed vdisk moves
  uint64_t transitions = 0; // committed cache-state changes and handovers
  uint64_t generations = 0; // distinct generations served in
  uint64_t forwarded = 0;   // requests that went to another node
  uint64_t mirrored = 0;    // copies stored on a partner
};

DpResult run_datapath(const DpOptions& options);

// The scripted scenarios, by name (the known weak spots of docs/cache.md).
std::vector<std::string> scenarios();

}  // namespace sve::datapath_sim

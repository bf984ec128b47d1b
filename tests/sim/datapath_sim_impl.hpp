#pragma once
// The data-path simulator's insides (tests/sim/datapath_sim.hpp says what
// it does): the simulated nodes and their ports, the host requests the
// checker follows, and the simulation itself. Its parts:
//   datapath_sim.cpp        set-up, the model through committed events, the
//                           nodes' views and controllers, faults, scenarios, the run
//   datapath_sim_wire.cpp   the wire, the back end, the interconnect's rules
//   datapath_sim_hosts.cpp  the hosts' requests and the checker

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

#include "cache/cache_facility.hpp"
#include "hw/device/mdisk_label.hpp"
#include "hw/nvram/nvram.hpp"
#include "io/interconnect/forward_facility.hpp"
#include "io/service_gate.hpp"
#include "model/edits.hpp"
#include "model/ownership.hpp"
#include "model/virt_map.hpp"
#include "tests/sim/cluster_sim.hpp"
#include "tests/sim/datapath_sim.hpp"
#include "virt/virtualizer.hpp"


namespace sve::datapath_sim::detail {


constexpr uint64_t kBlock = 4096;
constexpr uint64_t kVdiskBytes = 1 << 20;      // one extent
constexpr uint64_t kMdiskData = 8 << 20;
constexpr uint32_t kVdisks = 4;
// The blocks hosts use: three runs of each vdisk, so that requests of
// several blocks meet, and destage coalesces.
constexpr std::pair<uint64_t, uint64_t> kHotRuns[] = {{0, 12}, {100, 112}, {244, 256}};
constexpr uint64_t kRetryMs = 50;       // the interconnect's pause before a retry
constexpr uint64_t kGiveUpMs = 4000;    // a forwarded request finds no owner: EIO
constexpr uint64_t kDetectUs = 100'000; // a lost connection is noticed
// Back-end operations complete within this, stalls included: far below the
// time a new generation takes to open after a node's lease ran out, so a
// write a dead or cut-off owner issued has landed before anyone else owns
// its blocks (the back end has no fencing; see docs/cache.md).
constexpr uint64_t kMaxDiskUs = 30'000;
constexpr unsigned kHostDepth = 6;  // requests in flight per node

struct Sim;
struct Node;

// ---- the ports through which a node's facilities reach the simulation ---

struct SimDisk final : IoServer {
  Sim* sim = nullptr;
  Node* node = nullptr;
  void submit(IoRequestPtr r) override;
};
struct SimMirror final : MirrorLink {
  Sim* sim = nullptr;
  Node* node = nullptr;
  void mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) override;
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override;
};
struct SimRemote final : IoServer {  // the interconnect, outbound
  Sim* sim = nullptr;
  Node* node = nullptr;
  void submit(IoRequestPtr r) override;
};
struct ReturnPort final : IoClient {  // forwarded completions, back to the forward facility
  Node* node = nullptr;
  void io_done(IoRequestPtr r) override;
};
struct HostPort final : IoClient {  // completions to the hosts
  Sim* sim = nullptr;
  Node* node = nullptr;
  void io_done(IoRequestPtr r) override;
};
struct InboundPort final : IoClient {  // requests executed here for another node
  Sim* sim = nullptr;
  Node* node = nullptr;
  void io_done(IoRequestPtr r) override;
};

struct Outbound {
  IoRequestPtr request;
  uint64_t give_up_ms = 0;
  uint64_t attempt = 0;
  uint64_t op = 0;  // the host operation, for the checker
};
struct Inbound {
  uint32_t from = 0;
  uint64_t from_life = 0;
  uint64_t out_id = 0;
  uint64_t attempt = 0;
  uint64_t op = 0;
};

struct Node {
  uint32_t id = 0;
  bool up = false;
  bool isolated = false;
  uint64_t life = 0;  // incarnation: a message for an older one is dropped
  uint64_t quiet_until_us = 0;  // its back-end changes wait until then (a new process)
  std::string nvram_path;
  uint32_t cache_blocks = 64;
  bool cache_lost = false;
  uint64_t untrusted_epoch = 0;
  std::vector<uint32_t> lost_handovers;
  ServiceGate gate;
  std::unique_ptr<Nvram> nvram;
  SimDisk disk;
  SimMirror mirror;
  SimRemote remote;
  ReturnPort ret;
  HostPort host;
  InboundPort inbound_port;
  std::unique_ptr<Virtualizer> virt;
  std::unique_ptr<CacheFacility> cache;
  std::unique_ptr<ForwardFacility> forward;
  // The view published to the facilities.
  bool serving = false;
  uint64_t generation = 0;
  std::vector<uint32_t> members;
  uint64_t model_seq = UINT64_MAX;  // the committed event its model is from
  ClusterModel model;
  RoutePolicy policy;
  std::shared_ptr<const RouteTable> routes;
  // The interconnect's tables.
  uint64_t next_id = 1;
  std::map<uint64_t, Outbound> outbound;
  std::map<uint64_t, Inbound> inbound;
  uint64_t proposed_base = 0, proposed_at = 0;  // the controller's last proposal
  unsigned host_in_flight = 0;
};

// A host request and what the checker expects of it.
struct Op {
  uint64_t id = 0;
  uint32_t node = 0;
  uint32_t vdisk = 0;
  uint64_t first = 0;  // block
  uint32_t blocks = 0;
  IoOp kind = IoOp::read;
  uint64_t value = 0;  // a write's id
  bool abandoned = false;  // its node died with it
  uint64_t quiet_at = 0;   // abandoned: when nothing of it can land any more
  unsigned remote = 0;     // executions of it on another node, in flight
  bool sweep = false;
  const IoRequest* request = nullptr;
};

struct Ev {
  uint64_t at = 0;
  uint64_t order = 0;
  std::function<void()> fn;
  bool operator>(const Ev& o) const { return at != o.at ? at > o.at : order > o.order; }
};

struct Sim {
  explicit Sim(const DpOptions& o);
  ~Sim();
  DpResult run();

  // ---- clock and events
  uint64_t now_us = 0;
  uint64_t order = 0;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> events;
  void at(uint64_t when_us, std::function<void()> fn) {
    events.push({when_us, ++order, std::move(fn)});
  }
  uint64_t now_ms() const { return now_us / 1000; }

  DpOptions opt;
  std::mt19937_64 rng;
  uint64_t rand(uint64_t n) { return n ? rng() % n : 0; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  DpResult result;
  std::string dir;

  // ---- the cluster
  std::unique_ptr<cluster::sim::ScriptedCluster> cluster;
  std::map<uint32_t, Node> nodes;
  ClusterModel initial;
  std::vector<uint32_t> vdisk_ids;  // of v0 .. v3
  // Proposed model changes: "model:<k>" -> (base version, model).
  std::map<uint64_t, std::pair<uint64_t, ClusterModel>> proposals;
  uint64_t next_proposal = 1;
  // The model after each committed event that changed it (seq 0: initial).
  std::map<uint64_t, ClusterModel> models;
  uint64_t folded = 0;
  std::set<uint64_t> generations_seen;

  // ---- the back end: each mdisk's bytes
  std::map<uint32_t, std::vector<uint8_t>> mdisks;
  double disk_error = 0.0;
  double disk_stall = 0.0;

  // ---- the hosts and the checker
  uint64_t next_op = 1;
  std::map<uint64_t, Op> ops;
  std::unordered_map<const IoRequest*, uint64_t> op_of;
  // Per (vdisk, block): the writes a read may return.
  std::map<std::pair<uint32_t, uint64_t>, std::set<uint64_t>> acceptable_;
  std::set<uint64_t>& acceptable(uint32_t vdisk, uint64_t block) {
    auto [it, fresh] = acceptable_.try_emplace({vdisk, block});
    if (fresh) it->second.insert(0);  // never written: zeros
    return it->second;
  }
  std::set<std::pair<uint32_t, uint64_t>> busy;  // blocks with an op in flight
  std::set<std::pair<uint32_t, uint64_t>> sweep;  // reads owed after an event
  bool settling = false;  // the final read-back: a failure is one
  bool quiet = true;      // no new host requests (before the start, after the heal)

  void fail(const std::string& what) {
    if (!result.ok) return;
    std::ostringstream s;
    s << "seed " << opt.seed << " at " << now_us / 1000 << "." << (now_us % 1000) / 100
      << " ms: " << what;
    result.ok = false;
    result.failure = s.str();
  }
  void trace(const std::string& what) {
    if (opt.trace)
      std::printf("%8.1f %s\n", static_cast<double>(now_us) / 1000.0, what.c_str());
  }

  Node& node(uint32_t id) { return nodes.at(id); }
  void boot(Node& n);
  void crash(Node& n, bool lose_nvram);
  void restart_io(Node& n);
  bool redundant();
  void drop_data_path(Node& n, bool lose_nvram);
  void restart(Node& n);
  void isolate(Node& n);
  void heal();
  void fold_commits();
  const ClusterModel& model_at(uint64_t seq) const {
    return std::prev(models.upper_bound(seq))->second;
  }
  void refresh(Node& n);
  void control(Node& n);
  bool propose(Node& n, const ClusterModel& base, ClusterModel next);
  void move_some_vdisk();
  bool move(uint32_t vdisk_index, uint32_t to_node);
  // A scripted scenario: steps at times after the cluster first served.
  std::vector<std::pair<uint64_t, std::function<void()>>> script;
  uint64_t started_ms = 0;
  uint32_t stopping = 0;  // a node destaging all before it stops (0: none)
  bool io_restart_when_stopped = false;  // and then only its I/O process restarts
  void load_scenario();
  bool accepting(const Node& n) const {
    return n.up && n.gate.open() && n.routes && n.routes->serving;
  }

  // ---- the wire
  bool linked(uint32_t a, uint32_t b) const {
    const Node& x = nodes.at(a);
    const Node& y = nodes.at(b);
    return x.up && y.up && !x.isolated && !y.isolated;
  }
  // Delivers `deliver` on `to` after a wire delay if both ends are still
  // the same incarnations and connected; else `lost` runs on `from` once
  // the broken connection is noticed.
  void send(uint32_t from, uint32_t to, std::function<void()> deliver,
            std::function<void()> lost);
  void disk_submit(Node& n, IoRequestPtr r);
  void apply_disk(IoRequest& r, const std::vector<uint8_t>& written);
  void mirror(Node& n, uint32_t partner, const MirrorBatch& batch, uint64_t id);
  void release(Node& n, uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs);
  void forward_out(Node& n, IoRequestPtr r);
  void dispatch(Node& n, uint64_t id);
  void retry_later(Node& n, uint64_t id);
  void finish(Node& n, uint64_t id, int status);
  void serve_inbound(Node& owner, uint32_t from, uint64_t from_life, uint64_t out_id,
                     uint64_t attempt, uint64_t op, IoRequestPtr copy);
  void inbound_done(Node& owner, IoRequestPtr r);
  void answer(uint32_t owner, const Inbound& in, int status, IoRequestPtr done);
  void lost_answer(uint32_t requester, uint64_t life, uint64_t out_id, uint64_t attempt);

  // ---- hosts
  void issue(Node& n, uint32_t vdisk, uint64_t first, uint32_t blocks, IoOp kind, bool sweep);
  void host_done(Node& n, IoRequestPtr r);
  void workload();
  void release_abandoned();
  void check_read(const Op& op, const IoRequest& r);
};

}  // namespace sve::datapath_sim::detail

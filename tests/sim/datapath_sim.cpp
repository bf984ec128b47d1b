// The data-path simulator (tests/sim/datapath_sim.hpp).
#include "tests/sim/datapath_sim.hpp"

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
#include "virt/virtualizer.hpp"

namespace sve::datapath_sim {
namespace {

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

void SimDisk::submit(IoRequestPtr r) { sim->disk_submit(*node, std::move(r)); }
void SimMirror::mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  sim->mirror(*node, partner, batch, id);
}
void SimMirror::release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
                        const std::vector<uint64_t>& seqs) {
  sim->release(*node, partner, vdisk, blocks, seqs);
}
void SimRemote::submit(IoRequestPtr r) { sim->forward_out(*node, std::move(r)); }
void ReturnPort::io_done(IoRequestPtr r) { node->forward->io_done(std::move(r)); }
void HostPort::io_done(IoRequestPtr r) { sim->host_done(*node, std::move(r)); }
void InboundPort::io_done(IoRequestPtr r) { sim->inbound_done(*node, std::move(r)); }

// ---- set-up ---------------------------------------------------------------

Sim::Sim(const DpOptions& o) : opt(o), rng(o.seed * 0x9e3779b97f4a7c15ull + 17) {
  if (opt.nodes == 0) opt.nodes = rand(2) ? 4 : 2;
  char tmpl[] = "/tmp/sve-dpsim-XXXXXX";
  if (char* d = ::mkdtemp(tmpl)) dir = d;
  disk_error = chance(0.5) ? 0.0 : 0.002;
  disk_stall = chance(0.5) ? 0.01 : 0.05;

  // The model: two mdisks in one pool, I/O groups {1,2} (and {3,4}), four
  // vdisks of one extent each, preferring each node in turn.
  const MdiskOnline online = [](uint32_t) { return true; };
  for (const char* m : {"m1", "m2"}) {
    auto id = add_mdisk(initial, m, std::string("/sim/") + m, m, kMdiskData);
    mdisks[id.value()].assign(kMdiskReservedBytes + kMdiskData, 0);
  }
  (void)create_pool(initial, "p", kVdiskBytes, {"m1", "m2"}, online);
  std::vector<uint32_t> all;
  for (uint32_t i = 1; i <= opt.nodes; ++i) all.push_back(i);
  (void)create_iogrp(initial, "a", {1, 2}, all);
  if (opt.nodes == 4) (void)create_iogrp(initial, "b", {3, 4}, all);
  for (uint32_t v = 0; v < kVdisks; ++v) {
    NewVdisk nv;
    nv.name = "v" + std::to_string(v);
    nv.pool = "p";
    nv.size_bytes = kVdiskBytes;
    nv.placement.iogrp = opt.nodes == 4 && v >= 2 ? "b" : "a";
    nv.placement.node = opt.nodes == 4 ? v + 1 : 1 + v % 2;
    (void)create_vdisk(initial, nv, online);
  }
  for (const auto& v : initial.vdisks) vdisk_ids.push_back(v.id);
  initial.version = 1;
  models[0] = initial;

  cluster::CoreConfig core;
  cluster = std::make_unique<cluster::sim::ScriptedCluster>(opt.nodes, core, true);
  for (uint32_t i = 1; i <= opt.nodes; ++i) {
    Node& n = nodes[i];
    n.id = i;
    n.nvram_path = dir + "/node" + std::to_string(i) + ".nvram";
    n.cache_blocks = 32u << rand(3);  // 32 to 128: small, so writers wait for destage
    boot(n);
  }
}

Sim::~Sim() {
  for (auto& [id, n] : nodes) {
    n.forward.reset();
    n.cache.reset();
    n.virt.reset();
    n.nvram.reset();
    ::unlink(n.nvram_path.c_str());
  }
  if (!dir.empty()) ::rmdir(dir.c_str());
}

void Sim::boot(Node& n) {
  auto nv = Nvram::open(n.nvram_path, 4 * n.cache_blocks);
  if (!nv) {
    fail("node " + std::to_string(n.id) + ": " + nv.error().message);
    return;
  }
  n.nvram = std::move(nv.value());
  n.cache_lost = n.nvram->created() && n.life > 0;  // not on its first start
  n.untrusted_epoch = 0;
  n.lost_handovers.clear();
  n.up = true;
  ++n.life;
  n.disk.sim = n.mirror.sim = n.remote.sim = n.host.sim = n.inbound_port.sim = this;
  n.disk.node = n.mirror.node = n.remote.node = n.ret.node = n.host.node =
      n.inbound_port.node = &n;
  n.gate.open_until(0);
  n.virt = std::make_unique<Virtualizer>(n.disk);
  n.cache = std::make_unique<CacheFacility>(*n.virt, n.cache_blocks, n.nvram.get(), &n.mirror,
                                            n.id);
  n.cache->set_gate(&n.gate);
  n.forward = std::make_unique<ForwardFacility>(*n.cache, &n.remote, &n.ret);
  n.serving = false;
  n.generation = 0;
  n.members.clear();
  n.model_seq = UINT64_MAX;
  n.routes.reset();
  n.host_in_flight = 0;
}

void Sim::crash(Node& n, bool lose_nvram) {
  trace("crash node " + std::to_string(n.id) + (lose_nvram ? " (NVRAM lost)" : ""));
  cluster->crash(n.id);
  n.up = false;
  ++n.life;
  n.forward.reset();
  n.cache.reset();
  n.virt.reset();
  n.nvram.reset();
  if (lose_nvram) {
    ::unlink(n.nvram_path.c_str());
    ++result.nvram_lost;
  }
  n.outbound.clear();
  // What it was executing for others dies with it: they hear of it.
  for (auto& [iid, in] : n.inbound) {
    if (in.op && ops.count(in.op)) --ops[in.op].remote;
    at(now_us + kDetectUs, [=, this] { lost_answer(in.from, in.from_life, in.out_id, in.attempt); });
  }
  n.inbound.clear();
  // Its hosts' requests die with it: whatever they wrote may or may not
  // land, until nothing of them is left anywhere.
  for (auto& [id, op] : ops) {
    if (op.node != n.id || op.abandoned) continue;
    op.abandoned = true;
    op_of.erase(op.request);
    op.quiet_at = now_us + kMaxDiskUs + kDetectUs;
    if (op.kind == IoOp::write)
      for (uint32_t b = 0; b < op.blocks; ++b) acceptable(op.vdisk, op.first + b).insert(op.value);
  }
  ++result.crashes;
}

void Sim::restart(Node& n) {
  trace("restart node " + std::to_string(n.id));
  cluster->restart(n.id);
  boot(n);
}

void Sim::isolate(Node& n) {
  trace("isolate node " + std::to_string(n.id));
  cluster->isolate(n.id);
  n.isolated = true;
  ++result.isolations;
}

void Sim::heal() {
  trace("heal");
  cluster->heal();
  for (auto& [id, n] : nodes) n.isolated = false;
}

// ---- the model, through the cluster's committed events --------------------

void Sim::fold_commits() {
  const auto& events = cluster->committed_events();
  for (auto it = events.upper_bound(folded); it != events.end(); ++it) {
    folded = it->first;
    if (it->second.rfind("model:", 0) != 0) continue;
    auto p = proposals.find(std::stoull(it->second.substr(6)));
    if (p == proposals.end()) continue;
    const ClusterModel& current = models.rbegin()->second;
    // As the configuration RSM does: a change counts only on the model it
    // was made from; otherwise its node looks again.
    if (p->second.first != current.version) continue;
    ClusterModel next = p->second.second;
    next.version = current.version + 1;
    models[it->first] = std::move(next);
  }
}

bool Sim::propose(Node& n, const ClusterModel& base, ClusterModel next) {
  uint64_t k = next_proposal++;
  proposals[k] = {base.version, std::move(next)};
  return cluster->propose(n.id, "model:" + std::to_string(k));
}

// What the node's cluster actor and publish do: the lease opens and closes
// the gate; a new generation, or a new model, makes new routes.
void Sim::refresh(Node& n) {
  if (!n.up) return;
  cluster::ClusterCore* core = cluster->node(n.id);
  bool serving = core && core->has_quorum();
  uint64_t gen = core ? core->generation().number : 0;
  std::vector<uint32_t> members;
  if (core) members.assign(core->members().begin(), core->members().end());
  std::sort(members.begin(), members.end());
  uint64_t seq = core ? core->committed() : 0;
  const ClusterModel& model = model_at(seq);
  bool model_changed = n.model_seq == UINT64_MAX || model.version != n.model.version;
  if (!model_changed && serving == n.serving && gen == n.generation && members == n.members) {
    if (!serving) n.gate.open_until(0);
    return;
  }
  if (!serving) n.gate.open_until(0);  // at once, before anything else
  if (opt.trace) {
    std::string m;
    for (uint32_t x : members) m += " " + std::to_string(x);
    std::string groups;
    for (const auto& g : model.iogrps)
      groups += " " + g.name + ":epoch " + std::to_string(g.cache_epoch) + " solo " +
                std::to_string(g.solo);
    trace("node " + std::to_string(n.id) + (serving ? " serves" : " does not serve") +
          " in generation " + std::to_string(gen) + " members" + m + ", model " +
          std::to_string(model.version) + groups);
  }
  n.serving = serving;
  n.generation = gen;
  n.members = members;
  n.model_seq = seq;
  if (serving && gen) generations_seen.insert(gen);
  FacilityView view;
  if (model_changed) {
    n.model = model;
    view.map = build_virt_map(model);
    n.virt->set_view(view);
  }
  n.policy.self = n.id;
  n.policy.generation = gen;
  n.policy.serving = serving;
  n.policy.members = members;
  n.policy.cache = true;
  // As node/publish.cpp: a node whose NVRAM started empty does not trust
  // the epoch in force when it first serves.
  if (n.cache_lost && serving && n.untrusted_epoch == 0) {
    n.untrusted_epoch = group_epoch_of(n.model, n.id);
    n.lost_handovers = handovers_from(n.model, n.id);
  }
  n.policy.untrusted_epoch = n.untrusted_epoch;
  n.policy.lost_handovers = n.lost_handovers;
  auto routes = build_routes(n.model, n.policy);
  if (opt.broken == "no_hold") {
    auto loose = std::make_shared<RouteTable>(*routes);
    for (auto& [id, r] : loose->vdisks) r.hold = false;
    routes = loose;
  }
  n.routes = routes;
  view.routes = routes;
  if (opt.trace && std::getenv("DPSIM_WATCH")) {
    uint32_t watch = static_cast<uint32_t>(std::strtoull(std::getenv("DPSIM_WATCH"), nullptr, 10) >> 32);
    if (const VdiskRoute* r = routes->find(watch))
      trace("node " + std::to_string(n.id) + ": vdisk " + std::to_string(watch) + " owner " +
            std::to_string(r->owner) + (r->hold ? " hold" : "") + " mode " +
            std::to_string(static_cast<int>(r->mode)) + " handover_from " +
            std::to_string(r->handover_from) + " by " + std::to_string(r->handover_by));
  }
  n.cache->set_view(view);
  n.forward->set_view(view);
  if (serving) n.gate.open_until(ServiceGate::kForever);
  if (model_changed || gen) {
    // After every takeover, handover and move: read everything back.
    for (uint32_t v = 0; v < kVdisks; ++v)
      for (auto [a, b] : kHotRuns)
        for (uint64_t blk = a; blk < b; blk += 4) sweep.emplace(vdisk_ids[v], blk);
  }
}

// The cache controller of node/cache_controller.cpp, on this node's model.
void Sim::control(Node& n) {
  if (!n.up || !n.serving) return;
  CacheFacility& c = *n.cache;
  auto step = next_control_step(
      n.model, n.policy, [&](uint32_t g) { return c.dirty_blocks_of_group(g); },
      [&](uint32_t v) { return c.dirty_blocks(v) + c.held_blocks(v); });
  if (!step) return;
  // One proposal per model version at a time (the real one waits for the
  // commit's answer); again after a while if it was lost.
  if (n.proposed_base == n.model.version && now_ms() < n.proposed_at + 500) return;
  n.proposed_base = n.model.version;
  n.proposed_at = now_ms();
  trace("node " + std::to_string(n.id) + " proposes " + step->what);
  if (propose(n, n.model, std::move(step->next))) ++result.transitions;
}

bool Sim::move(uint32_t index, uint32_t to_node) {
  for (auto& [id, n] : nodes) {
    if (!n.up || !n.serving) continue;
    ClusterModel next = n.model;
    Placement where;
    where.node = to_node;
    auto moved = move_vdisk(next, "v" + std::to_string(index), where);
    if (!moved) return false;
    trace("move v" + std::to_string(index) + " to node " + std::to_string(to_node));
    if (propose(n, n.model, std::move(next))) ++result.moves;
    return true;
  }
  return false;
}

// The known weak spots of docs/cache.md, as scripts. v0 prefers node 1.
void Sim::load_scenario() {
  auto owner_of_v0 = [this]() -> Node& { return node(1); };
  if (opt.scenario == "owner_returns_during_handover") {
    // Node 1 holds v0's dirty blocks behind a slow back end; v0 moves to
    // node 2, and node 1 dies in the middle of handing it over. Node 2
    // takes the group over with its copies; node 1 comes back with its
    // NVRAM and must not take anything back that node 2 wrote since.
    script = {{0, [this] { disk_stall = 0.3; }},
              {400, [this] { move(0, 2); }},
              {402, [this, owner_of_v0] { crash(owner_of_v0(), false); }},
              {1400, [this] { disk_stall = 0.01; }},
              {1500, [this, owner_of_v0] { restart(owner_of_v0()); }},
              {2500, [this] { move(0, 1); }}};
  } else if (opt.scenario == "stop_loses_releases") {
    // Node 1 stops as sved does on SIGTERM: it destages everything, then
    // goes, and the releases it sent for the partner's copies are lost on
    // the way. Node 2 holds copies of blocks that are on the back end now;
    // hosts go on writing through it; node 1 returns.
    script = {{300, [this, owner_of_v0] {
                 owner_of_v0().cache->flush_all();
                 stopping = 1;
               }},
              {1500, [this, owner_of_v0] { restart(owner_of_v0()); }},
              {2600, [this] { crash(node(2), false); }},
              {3500, [this] { restart(node(2)); }}};
  } else if (!opt.scenario.empty()) {
    fail("no scenario '" + opt.scenario + "'");
  }
}

void Sim::move_some_vdisk() {
  std::vector<Node*> serving;
  for (auto& [id, n] : nodes)
    if (n.up && n.serving) serving.push_back(&n);
  if (serving.empty()) return;
  Node& at = *serving[rand(serving.size())];
  ClusterModel next = at.model;
  uint32_t v = static_cast<uint32_t>(rand(kVdisks));
  Placement where;
  if (opt.nodes == 4 && chance(0.5)) {
    where.iogrp = rand(2) ? "a" : "b";
  } else {
    const VdiskConfig* vd = next.find_vdisk("v" + std::to_string(v));
    const IoGroupConfig* g = vd ? next.find_iogrp(vd->iogrp_id) : nullptr;
    if (!g) return;
    where.node = g->nodes[0] == vd->preferred_node ? g->nodes[1] : g->nodes[0];
  }
  auto moved = move_vdisk(next, "v" + std::to_string(v), where);
  if (!moved) return;  // still being handed over: another time
  trace("move v" + std::to_string(v) + " to group " + std::to_string(moved->iogrp_id) +
        " node " + std::to_string(moved->preferred_node) + " (from node " +
        std::to_string(moved->handover_from) + ")");
  if (propose(at, at.model, std::move(next))) ++result.moves;
}

// ---- the wire and the back end ---------------------------------------------

void Sim::send(uint32_t from, uint32_t to, std::function<void()> deliver,
               std::function<void()> lost) {
  uint64_t from_life = node(from).life, to_life = node(to).life;
  at(now_us + 20 + rand(600), [=, this] {
    if (node(from).life == from_life && node(to).life == to_life && linked(from, to))
      return deliver();
    // The connection broke (a node died or was cut off): whoever waits on
    // it notices a little later. `lost` checks that its waiter still is.
    if (lost) at(now_us + kDetectUs, lost);
  });
}

void Sim::disk_submit(Node& n, IoRequestPtr r) {
  uint64_t delay = 30 + rand(400);
  if (chance(disk_stall)) delay = 2'000 + rand(kMaxDiskUs - 2'000);
  uint32_t id = n.id;
  uint64_t life = n.life;
  // What a write carries, as the device took it: the buffer may be the
  // cache's memory, gone with the node if it dies meanwhile.
  auto data = std::make_shared<std::vector<uint8_t>>();
  if (r->op == IoOp::write) {
    data->resize(r->length);
    r->buffer->copy_out(r->buffer_offset, r->length, data->data());
  }
  at(now_us + delay, [=, this]() mutable {
    Node& m = node(id);
    if (!m.up || m.life != life) {
      // The node died with it in flight: the device may still do it.
      if (r->op != IoOp::read && chance(0.5)) apply_disk(*r, *data);
      return;
    }
    int status = 0;
    if (chance(disk_error)) status = EIO;
    if (status == 0) apply_disk(*r, *data);
    complete(std::move(r), status);
  });
}

void Sim::apply_disk(IoRequest& r, const std::vector<uint8_t>& written) {
  if (r.op == IoOp::flush) return;
  auto it = mdisks.find(r.volume);
  if (it == mdisks.end() || r.offset + r.length > it->second.size()) {
    fail("a request beyond mdisk " + std::to_string(r.volume));
    return;
  }
  uint8_t* at = it->second.data() + r.offset;
  if (r.op == IoOp::write)
    std::memcpy(at, written.data(), r.length);
  else if (r.op == IoOp::read)
    r.buffer->copy_in(r.buffer_offset, r.length, at);
  else
    std::memset(at, 0, r.length);
}

void Sim::mirror(Node& n, uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  uint32_t self = n.id;
  uint64_t life = n.life;
  auto answer = [=, this](bool ok) {
    Node& m = node(self);
    if (m.up && m.life == life) m.cache->mirror_done(id, ok);
  };
  if (!nodes.count(partner)) return answer(false);
  send(
      self, partner,
      [=, this] {
        Node& p = node(partner);
        int status = ESTALE;
        if (opt.broken == "mirror_fakes_success") {
          status = 0;
        } else if (accepting(p)) {
          status = p.cache->store_mirror(batch);
          if (status == 0) ++result.mirrored;
        }
        send(partner, self, [=] { answer(status == 0); }, [=] { answer(false); });
      },
      [=] { answer(false); });
}

void Sim::release(Node& n, uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
                  const std::vector<uint64_t>& seqs) {
  if (!nodes.count(partner)) return;
  uint32_t origin = n.id;
  send(
      origin, partner,
      [=, this] {
        Node& p = node(partner);
        p.cache->release_mirror(origin, vdisk, blocks, seqs);
      },
      nullptr);
}

// The interconnect (io/interconnect/interconnect_actor.cpp), outbound: a
// request goes to its vdisk's owner; sent again only when the owner is known
// not to have it (ESTALE) or the connection broke; EIO when no owner takes
// it in time.
void Sim::forward_out(Node& n, IoRequestPtr r) {
  uint64_t id = n.next_id++;
  Outbound& out = n.outbound[id];
  out.op = op_of.count(r.get()) ? op_of[r.get()] : 0;
  out.request = std::move(r);
  out.give_up_ms = now_ms() + kGiveUpMs;
  dispatch(n, id);
}

void Sim::retry_later(Node& n, uint64_t id) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  if (now_ms() >= it->second.give_up_ms) return finish(n, id, EIO);
  uint32_t self = n.id;
  uint64_t life = n.life;
  at(now_us + kRetryMs * 1000, [=, this] {
    Node& m = node(self);
    if (m.up && m.life == life) dispatch(m, id);
  });
}

void Sim::finish(Node& n, uint64_t id, int status) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  IoRequestPtr r = std::move(it->second.request);
  n.outbound.erase(it);
  complete(std::move(r), status);
}

void Sim::dispatch(Node& n, uint64_t id) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  IoRequestPtr& r = it->second.request;
  const VdiskRoute* route = n.routes && n.routes->serving ? n.routes->find(r->volume) : nullptr;
  if (!route || route->owner == 0 || route->hold) return retry_later(n, id);
  if (route->owner == n.id) {  // it came here meanwhile
    IoRequestPtr mine = std::move(r);
    n.outbound.erase(it);
    n.cache->submit(std::move(mine));
    return;
  }
  uint32_t owner = route->owner;
  uint64_t attempt = ++it->second.attempt;
  uint64_t op = it->second.op;
  ++result.forwarded;
  // What travels: the request's fields and a write's payload.
  IoRequestPtr copy = make_request();
  copy->op = r->op;
  copy->flags = r->flags;
  copy->volume = r->volume;
  copy->offset = r->offset;
  copy->length = r->length;
  if ((r->op == IoOp::read || r->op == IoOp::write) && r->length) {
    copy->buffer = Buffer::allocate(r->length);
    if (r->op == IoOp::write) {
      std::vector<char> bytes(r->length);
      r->buffer->copy_out(r->buffer_offset, r->length, bytes.data());
      copy->buffer->copy_in(0, r->length, bytes.data());
    }
  }
  uint32_t self = n.id;
  uint64_t life = n.life;
  if (op) ++ops[op].remote;
  send(
      self, owner,
      [=, this] { serve_inbound(node(owner), self, life, id, attempt, op, copy); },
      [=, this] {
        if (op && ops.count(op)) --ops[op].remote;
        lost_answer(self, life, id, attempt);
      });
}

// The requester of a forwarded request hears nothing back because the
// connection broke: it sends the request again once the routes allow.
void Sim::lost_answer(uint32_t requester, uint64_t life, uint64_t out_id, uint64_t attempt) {
  Node& s = node(requester);
  if (!s.up || s.life != life) return;
  auto o = s.outbound.find(out_id);
  if (o != s.outbound.end() && o->second.attempt == attempt) retry_later(s, out_id);
}

void Sim::answer(uint32_t owner, const Inbound& in, int status, IoRequestPtr done) {
  send(
      owner, in.from,
      [=, this] {
        Node& s = node(in.from);
        if (s.life != in.from_life) return;
        auto o = s.outbound.find(in.out_id);
        if (o == s.outbound.end() || o->second.attempt != in.attempt) return;
        if (status == ESTALE) return retry_later(s, in.out_id);
        IoRequest& mine = *o->second.request;
        if (status == 0 && mine.op == IoOp::read) {
          std::vector<char> bytes(mine.length);
          done->buffer->copy_out(0, mine.length, bytes.data());
          mine.buffer->copy_in(mine.buffer_offset, mine.length, bytes.data());
        }
        finish(s, in.out_id, status);
      },
      [=, this] { lost_answer(in.from, in.from_life, in.out_id, in.attempt); });
}

void Sim::serve_inbound(Node& owner, uint32_t from, uint64_t from_life, uint64_t out_id,
                        uint64_t attempt, uint64_t op, IoRequestPtr copy) {
  Inbound in{from, from_life, out_id, attempt, op};
  const RouteTable* routes = owner.routes.get();
  if (!accepting(owner) || !routes->find(copy->volume) || !routes->local(copy->volume)) {
    if (op && ops.count(op)) --ops[op].remote;
    return answer(owner.id, in, ESTALE, nullptr);
  }
  uint64_t iid = owner.next_id++;
  owner.inbound[iid] = in;
  copy->cookie = iid;
  copy->client = &owner.inbound_port;
  owner.cache->submit(std::move(copy));
}

void Sim::inbound_done(Node& owner, IoRequestPtr r) {
  auto it = owner.inbound.find(r->cookie);
  if (it == owner.inbound.end()) return;
  Inbound in = it->second;
  owner.inbound.erase(it);
  if (in.op && ops.count(in.op)) --ops[in.op].remote;
  answer(owner.id, in, r->status, r);
}

// ---- hosts and the checker -------------------------------------------------

// A block written by write `value`: its id, its place, then a pattern of both.
void fill_block(uint8_t* b, uint64_t value, uint32_t vdisk, uint64_t block) {
  std::memcpy(b, &value, 8);
  uint64_t where = (uint64_t{vdisk} << 32) | block;
  std::memcpy(b + 8, &where, 8);
  for (uint64_t i = 16; i < kBlock; ++i) b[i] = static_cast<uint8_t>(value * 131 + block + i);
}

// The write a block holds (0: never written), or false if it is no block any
// write of this checker left whole.
bool read_block(const uint8_t* b, uint32_t vdisk, uint64_t block, uint64_t& value) {
  std::memcpy(&value, b, 8);
  if (value == 0) {
    for (uint64_t i = 0; i < kBlock; ++i)
      if (b[i]) return false;
    return true;
  }
  uint8_t expect[kBlock];
  fill_block(expect, value, vdisk, block);
  return std::memcmp(expect, b, kBlock) == 0;
}

void Sim::issue(Node& n, uint32_t vdisk, uint64_t first, uint32_t blocks, IoOp kind,
                bool is_sweep) {
  for (uint32_t b = 0; b < blocks; ++b)
    if (busy.count({vdisk, first + b})) return;
  Op op;
  op.id = next_op++;
  op.node = n.id;
  op.vdisk = vdisk;
  op.first = first;
  op.blocks = blocks;
  op.kind = kind;
  op.sweep = is_sweep;
  IoRequestPtr r = make_request();
  r->op = kind;
  r->volume = vdisk;
  r->offset = first * kBlock;
  r->length = kind == IoOp::flush ? 0 : blocks * kBlock;
  r->client = &n.host;
  if (kind == IoOp::read || kind == IoOp::write) r->buffer = Buffer::allocate(r->length);
  if (kind == IoOp::write) {
    op.value = op.id;
    std::vector<uint8_t> data(r->length);
    for (uint32_t b = 0; b < blocks; ++b)
      fill_block(data.data() + b * kBlock, op.value, vdisk, first + b);
    r->buffer->copy_in(0, r->length, data.data());
  }
  if (kind != IoOp::flush)
    for (uint32_t b = 0; b < blocks; ++b) busy.insert({vdisk, first + b});
  op_of[r.get()] = op.id;
  op.request = r.get();
  ops[op.id] = op;
  ++n.host_in_flight;
  n.forward->submit(std::move(r));
}

void Sim::check_read(const Op& op, const IoRequest& r) {
  std::vector<uint8_t> data(r.length);
  r.buffer->copy_out(r.buffer_offset, r.length, data.data());
  for (uint32_t b = 0; b < op.blocks; ++b) {
    uint64_t block = op.first + b, value = 0;
    std::string where = "vdisk " + std::to_string(op.vdisk) + " block " + std::to_string(block) +
                        " read through node " + std::to_string(op.node);
    if (!read_block(data.data() + b * kBlock, op.vdisk, block, value))
      return fail(where + ": torn or foreign data");
    auto& ok = acceptable(op.vdisk, block);
    if (!ok.count(value)) {
      std::string want;
      for (uint64_t w : ok) want += " " + std::to_string(w);
      return fail(where + ": holds write " + std::to_string(value) + ", expected one of:" + want);
    }
    ++result.blocks_checked;
  }
  ++result.reads_checked;
}

void Sim::host_done(Node& n, IoRequestPtr r) {
  auto found = op_of.find(r.get());
  if (found == op_of.end()) return fail("a completion for no host request");
  uint64_t id = found->second;
  op_of.erase(found);
  Op op = ops[id];
  if (n.host_in_flight) --n.host_in_flight;
  if (opt.trace && op.kind != IoOp::flush && std::getenv("DPSIM_WATCH")) {
    uint64_t watch = std::strtoull(std::getenv("DPSIM_WATCH"), nullptr, 10);
    if (op.vdisk == (watch >> 32) && op.first <= (watch & 0xffffffff) &&
        (watch & 0xffffffff) < op.first + op.blocks)
      trace("op " + std::to_string(op.id) + (op.kind == IoOp::write ? " write" : " read") +
            " via node " + std::to_string(op.node) + " blocks " + std::to_string(op.first) + "+" +
            std::to_string(op.blocks) + " status " + std::to_string(r->status) +
            (op.abandoned ? " (abandoned)" : ""));
  }
  if (op.abandoned) return;  // its host gave up on it with the node
  if (r->status != 0) {
    ++result.io_errors;
    if (op.kind == IoOp::write)
      for (uint32_t b = 0; b < op.blocks; ++b)
        acceptable(op.vdisk, op.first + b).insert(op.value);
    if (op.sweep && settling) fail("a read after everything healed failed: errno " +
                                   std::to_string(r->status));
  } else if (op.kind == IoOp::write) {
    for (uint32_t b = 0; b < op.blocks; ++b) acceptable(op.vdisk, op.first + b) = {op.value};
    ++result.writes_acked;
  } else if (op.kind == IoOp::read) {
    check_read(op, *r);
  }
  for (uint32_t b = 0; b < op.blocks && op.kind != IoOp::flush; ++b)
    busy.erase({op.vdisk, op.first + b});
  ops.erase(id);
}

// An abandoned request's blocks are free again once nothing of it can land.
void Sim::release_abandoned() {
  for (auto it = ops.begin(); it != ops.end();) {
    Op& op = it->second;
    if (!op.abandoned || op.remote > 0 || now_us < op.quiet_at) {
      ++it;
      continue;
    }
    for (uint32_t b = 0; b < op.blocks && op.kind != IoOp::flush; ++b)
      busy.erase({op.vdisk, op.first + b});
    it = ops.erase(it);
  }
}

void Sim::workload() {
  std::vector<Node*> up;
  for (auto& [id, n] : nodes)
    if (n.up) up.push_back(&n);
  if (up.empty()) return;
  // The reads owed after an event first, a few at a time.
  for (int i = 0; i < 4 && !sweep.empty(); ++i) {
    auto [v, blk] = *sweep.begin();
    Node& n = *up[rand(up.size())];
    uint64_t end = blk;
    for (auto [a, b] : kHotRuns)
      if (blk >= a && blk < b) end = std::min<uint64_t>(b, blk + 4);
    bool free = true;
    for (uint64_t x = blk; x < end; ++x) free = free && !busy.count({v, x});
    if (!free) break;
    sweep.erase(sweep.begin());
    issue(n, v, blk, static_cast<uint32_t>(end - blk), IoOp::read, true);
  }
  if (quiet) return;
  for (Node* n : up) {
    if (n->host_in_flight >= kHostDepth || !chance(0.6)) continue;
    uint32_t v = vdisk_ids[rand(kVdisks)];
    auto [a, b] = kHotRuns[rand(std::size(kHotRuns))];
    uint64_t first = a + rand(b - a);
    uint32_t blocks = static_cast<uint32_t>(std::min<uint64_t>(1 + rand(4), b - first));
    uint64_t pick = rand(100);
    IoOp kind = pick < 55 ? IoOp::write : pick < 97 ? IoOp::read : IoOp::flush;
    issue(*n, v, first, blocks, kind, false);
  }
}

// ---- the run ---------------------------------------------------------------

DpResult Sim::run() {
  if (!result.ok) return result;
  uint64_t next_fault = 300 + rand(500);
  load_scenario();
  if (!opt.scenario.empty()) opt.fault_ms = std::max<uint64_t>(opt.fault_ms, 4500);
  uint64_t end_ms = opt.fault_ms + opt.settle_ms;
  bool healed = false;
  uint64_t settled_at = 0;
  for (uint64_t ms = 0; ms < end_ms && result.ok; ++ms) {
    cluster->run_for(1);
    if (!cluster->result().ok) {
      fail("the cluster protocol: " + cluster->result().failure);
      break;
    }
    fold_commits();
    for (auto& [id, n] : nodes) refresh(n);
    uint64_t until = (ms + 1) * 1000;
    while (!events.empty() && events.top().at < until && result.ok) {
      Ev e = events.top();
      events.pop();
      now_us = std::max(now_us, e.at);
      e.fn();
    }
    now_us = until;
    if (ms % 20 == 0)
      for (auto& [id, n] : nodes)
        if (n.up) n.cache->tick(ms);
    if (ms % 40 == 0)
      for (auto& [id, n] : nodes) control(n);
    release_abandoned();
    if (!settled_at) workload();

    if (!quiet && !started_ms) started_ms = ms;
    if (started_ms && !script.empty()) {
      // Steps due now, in order; a step may add one.
      for (size_t i = 0; i < script.size() && result.ok;) {
        if (script[i].first + started_ms > ms) {
          ++i;
          continue;
        }
        auto step = script[i].second;
        script.erase(script.begin() + static_cast<long>(i));
        step();
      }
    }
    if (stopping) {
      Node& n = node(stopping);
      if (!n.up) {
        stopping = 0;
      } else if (n.cache->dirty_total() == 0) {
        n.cache->flush_all();  // the releases go out now, and are lost with it
        stopping = 0;
        crash(n, false);
      }
    }
    if (!healed && !quiet && ms < opt.fault_ms && ms >= next_fault && opt.scenario.empty()) {
      next_fault = ms + 200 + rand(800);
      Node* down = nullptr;
      Node* cut = nullptr;
      for (auto& [id, n] : nodes) {
        if (!n.up) down = &n;
        if (n.isolated) cut = &n;
      }
      uint64_t pick = rand(10);
      if (down) {
        // Sometimes back before anyone took over, sometimes after.
        if (pick < 4) restart(*down);
      } else if (cut) {
        if (pick < 7) heal();
      } else if (pick < 3) {
        Node& n = node(1 + static_cast<uint32_t>(rand(opt.nodes)));
        crash(n, chance(0.25));
      } else if (pick < 5) {
        isolate(node(1 + static_cast<uint32_t>(rand(opt.nodes))));
      } else if (pick < 8) {
        move_some_vdisk();
      }
    }
    if (quiet && !healed) {
      bool all = true;
      for (auto& [id, n] : nodes) all = all && n.serving;
      quiet = !all;
    }
    if (!healed && ms >= opt.fault_ms) {
      healed = true;
      quiet = true;
      disk_error = 0;
      heal();
      for (auto& [id, n] : nodes)
        if (!n.up) restart(n);
    }
    // Settled: every group writes back on both nodes, no handover is left,
    // and nothing is in flight. Then everything is read back once more.
    if (healed && !settled_at) {
      bool done = true;
      for (auto& [id, n] : nodes) {
        done = done && n.up && n.serving && n.members.size() == opt.nodes;
        if (!done) break;
        for (const auto& g : n.model.iogrps) done = done && g.solo == 0;
        for (const auto& v : n.model.vdisks) done = done && v.handover_from == 0;
      }
      if (done && ops.empty()) {
        settled_at = ms;
        settling = true;
        sweep.clear();
        for (uint32_t v = 0; v < kVdisks; ++v)
          for (auto [a, b] : kHotRuns)
            for (uint64_t blk = a; blk < b; blk += 4) sweep.emplace(vdisk_ids[v], blk);
        trace("settled");
      }
    }
    if (settled_at) {
      workload();
      if (sweep.empty() && ops.empty()) break;
    }
  }
  if (result.ok && !settled_at) {
    std::string why;
    for (auto& [id, n] : nodes) {
      why += " node " + std::to_string(id) + (n.serving ? " serving" : " not serving") +
             " members " + std::to_string(n.members.size());
      for (const auto& g : n.model.iogrps) why += " solo(" + g.name + ")=" + std::to_string(g.solo);
      for (const auto& v : n.model.vdisks)
        if (v.handover_from) why += " " + v.name + "<-" + std::to_string(v.handover_from);
      if (n.cache) why += " dirty=" + std::to_string(n.cache->dirty_total());
    }
    fail("did not settle after everything healed:" + why + "; " + std::to_string(ops.size()) +
         " requests in flight");
  }
  if (result.ok && (!sweep.empty() || !ops.empty()))
    fail("the final read-back did not finish");
  result.generations = generations_seen.size();
  return result;
}

}  // namespace

DpResult run_datapath(const DpOptions& options) {
  Sim sim(options);
  return sim.run();
}

std::vector<std::string> scenarios() {
  return {"owner_returns_during_handover", "stop_loses_releases"};
}

}  // namespace sve::datapath_sim

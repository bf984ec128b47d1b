// The data-path simulator (tests/sim/datapath_sim.hpp): set-up, the model,
// the nodes' views and controllers, faults, scenarios and the run.
#include "tests/sim/datapath_sim.hpp"
#include "tests/sim/datapath_sim_impl.hpp"

namespace sve::datapath_sim {
namespace detail {

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
  n.quiet_until_us = now_us + kMaxDiskUs + 1'000;
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
  drop_data_path(n, lose_nvram);
  ++result.crashes;
}

// The I/O process dies and its supervisor starts another at once: the
// cluster core (in sved's configuration process) goes on, so the node keeps
// its generation and the group its epoch; only the data path starts over,
// on what its NVRAM holds.
void Sim::restart_io(Node& n) {
  trace("I/O process of node " + std::to_string(n.id) + " restarts");
  drop_data_path(n, false);
  ++result.io_restarts;
  boot(n);
}

void Sim::drop_data_path(Node& n, bool lose_nvram) {
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
}

// Whether every acknowledged write has a copy on two nodes now: every node
// serves, every group writes back on both, and no node's copies are of an
// epoch it does not trust (its NVRAM came back empty and its group has not
// moved on since). Only up is not enough: a node back with an empty NVRAM
// holds nothing until its group has destaged and resynchronised.
bool Sim::redundant() {
  for (auto& [id, n] : nodes) {
    if (!n.up || !n.serving) return false;
    for (const auto& g : n.model.iogrps)
      if (g.solo != 0) return false;
    if (n.untrusted_epoch && group_epoch_of(n.model, n.id) == n.untrusted_epoch) return false;
  }
  return true;
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
  } else if (opt.scenario == "io_restart_loses_releases") {
    // Node 1's I/O process restarts right after destaging everything (its
    // releases lost with it) while its cluster core goes on: same
    // generation, same epoch. Hosts write on through it; 60 ms later node 1
    // dies and node 2 takes the group over with the copies it holds: each
    // must be the last version node 1 acknowledged.
    script = {{300, [this, owner_of_v0] {
                 owner_of_v0().cache->flush_all();
                 stopping = 1;
                 io_restart_when_stopped = true;
               }},
              {2500, [this, owner_of_v0] { restart(owner_of_v0()); }}};
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
        if (io_restart_when_stopped) {
          // It writes on, numbering from where it restarted, and dies
          // before those writes' copies were all superseded by later ones.
          restart_io(n);
          uint32_t id = n.id;
          at(now_us + 60'000, [this, id] { if (node(id).up) crash(node(id), false); });
        } else {
          crash(n, false);
        }
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
        if (pick == 2 && chance(0.5)) {
          restart_io(n);
        } else {
          // Its NVRAM is lost only while every write has a second copy:
          // the design keeps two, not three.
          bool lose = chance(0.25);
          crash(n, lose && redundant());
        }
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

}  // namespace detail


DpResult run_datapath(const DpOptions& options) {
  detail::Sim sim(options);
  return sim.run();
}

std::vector<std::string> scenarios() {
  return {"owner_returns_during_handover", "stop_loses_releases", "io_restart_loses_releases"};
}

}  // namespace sve::datapath_sim

// The cache controller and the destage on the way out.
#include "node/node_impl.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "cluster/state/cluster_state.hpp"

namespace sve {

void Node::Impl::destage_before_stop() {
  if (!sys || cache_blocks == 0) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t dirty = 0;
  try {
    for (;;) {
      dirty = map_reduce<uint64_t>(&CoreStack::cache_actor, [](CoreStack& core, size_t) {
        core.cache->flush_all();
        return uint64_t{core.cache->dirty_total()};
      });
      if (dirty == 0 || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception& e) {
    spdlog::warn("shutdown: {}", e.what());
  }
  if (dirty)
    spdlog::warn("shutdown: {} dirty blocks not destaged; their copies stay in NVRAM and with "
                 "the partner", dirty);
  else
    spdlog::info("shutdown: the cache is destaged");
}

namespace {

// One round of the controller: the model and policy it decides on, and the
// dirty counts the cores report (summed as they come in).
struct ControlRound {
  uint64_t id = 0;
  RoutePolicy policy;
  ClusterModel model;
  std::map<uint32_t, uint64_t> group_dirty;  // this node's I/O groups
  std::map<uint32_t, uint64_t> vdisk_dirty;  // vdisks being handed over
  size_t waiting = 0;                        // cores still to report
};

struct ControllerState {
  static inline const char* name = "cache-controller";
  std::shared_ptr<ControlRound> round;  // in progress, or null
  uint64_t next_round = 1;
  uint64_t started_ms = 0;
};

using ControllerSelf = caf::stateful_actor<ControllerState>;

// What the controller works with: the node's routing snapshot, the cores'
// cache partitions (each with the actor that runs on its core), and the
// cluster actor that commits.
struct ControllerSetup {
  std::function<std::pair<RoutePolicy, ClusterModel>()> snapshot;
  std::vector<std::pair<caf::actor, CacheFacility*>> cores;
  caf::actor cluster_actor;
};
using SetupPtr = std::shared_ptr<const ControllerSetup>;

constexpr uint64_t kRoundTimeoutMs = 10'000;
const std::string kControllerName = "cache controller";

// Every core's counts are in: decide, and commit the change (if any) through
// the cluster actor. The round ends with the answer.
void decide(ControllerSelf* self, const SetupPtr& m) {
  auto round = self->state.round;
  auto count = [](const std::map<uint32_t, uint64_t>& of, uint32_t id) {
    auto it = of.find(id);
    return it == of.end() ? uint64_t{0} : it->second;
  };
  auto step = next_control_step(
      round->model, round->policy,
      [&](uint32_t group) { return count(round->group_dirty, group); },
      [&](uint32_t vdisk) { return count(round->vdisk_dirty, vdisk); });
  if (!step) {
    self->state.round.reset();
    return;
  }
  // Committed straight through the cluster actor, on top of the model this
  // node routes by: the config actor (and the admin commands it serves)
  // never waits for these. A model that moved on meanwhile means the next
  // round looks again.
  std::string what = step->what;
  uint64_t id = round->id;
  auto done = [self, id] {
    if (self->state.round && self->state.round->id == id) self->state.round.reset();
  };
  self->request(m->cluster_actor, std::chrono::seconds(20), commit_atom::value,
                round->model.version, pack_to_string(step->next))
      .then(
          [self, done, what](CommitOutcome& outcome) {
            if (outcome.kind == CommitOutcome::Kind::committed)
              spdlog::info("cache controller: committed {}", what);
            else if (outcome.kind == CommitOutcome::Kind::refused)
              spdlog::warn("cache controller: {} not committed: {}", what, outcome.error);
            done();  // a conflict: the next round looks again
          },
          [self, done, what](caf::error& e) {
            spdlog::warn("cache controller: {} not committed: {}", what,
                         self->system().render(e));
            done();
          });
}

// Starts a round: asks every core's cache partition, on its own thread,
// for the counts the decision needs; each answers with a task that this
// actor runs (so the round is only touched here).
void start_round(ControllerSelf* self, const SetupPtr& m) {
  auto round = std::make_shared<ControlRound>();
  std::tie(round->policy, round->model) = m->snapshot();
  if (!round->policy.serving) return;
  round->id = self->state.next_round++;
  std::vector<uint32_t> groups, vdisks;
  for (const auto& g : round->model.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), round->policy.self)) groups.push_back(g.id);
  for (const auto& v : round->model.vdisks)
    if (v.handover_from) vdisks.push_back(v.id);
  round->waiting = m->cores.size();
  self->state.round = round;
  self->state.started_ms = monotonic_ms();
  auto me = caf::actor_cast<caf::actor>(self);
  for (const auto& [on, cache] : m->cores) {
    run_on_core(on, [cache = cache, groups, vdisks, me, self, m, round] {
      std::map<uint32_t, uint64_t> by_group, by_vdisk;
      for (uint32_t g : groups) by_group[g] = cache->dirty_blocks_of_group(g);
      for (uint32_t v : vdisks) by_vdisk[v] = cache->dirty_blocks(v) + cache->held_blocks(v);
      // Back on the controller's thread.
      caf::anon_send(me, run_atom::value, CoreTask([self, m, round, by_group, by_vdisk] {
        if (self->state.round != round) return;  // a round given up on
        for (const auto& [g, n] : by_group) round->group_dirty[g] += n;
        for (const auto& [v, n] : by_vdisk) round->vdisk_dirty[v] += n;
        if (--round->waiting == 0) decide(self, m);
      }));
    });
  }
}

caf::behavior cache_controller(ControllerSelf* self, SetupPtr m,
                               std::chrono::milliseconds period) {
  self->send(self, tick_atom::value);
  return guarded_behavior(self, &kControllerName,
      [=](tick_atom) {
        self->delayed_send(self, period, tick_atom::value);
        if (self->state.round) {
          if (monotonic_ms() < self->state.started_ms + kRoundTimeoutMs) return;
          spdlog::warn("cache controller: a round got no answer in {} ms; starting again",
                       kRoundTimeoutMs);
          self->state.round.reset();
        }
        start_round(self, m);
      },
      [=](run_atom, CoreTask& task) { task(); }
  );
}

}  // namespace

// Checks every few heartbeats; never blocks a thread: the cores answer by
// message and the commit's answer comes back as one.
caf::actor Node::Impl::spawn_controller() {
  auto setup = std::make_shared<ControllerSetup>();
  setup->snapshot = [this] {
    std::lock_guard lock(routes_mu);
    return std::make_pair(policy, routed_config);
  };
  for (CoreStack& core : cores) setup->cores.emplace_back(core.cache_actor, core.cache.get());
  setup->cluster_actor = cluster_actor;
  auto period = std::chrono::milliseconds(std::max<uint64_t>(20, options.heartbeat_ms * 2));
  return sys->spawn(cache_controller, SetupPtr(std::move(setup)), period);
}

}  // namespace sve

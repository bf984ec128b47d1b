// The cache controller and the destage on the way out.
#include "node/node_impl.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

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

void Node::Impl::run_controller() {
  auto period = std::chrono::milliseconds(std::max<uint64_t>(20, options.heartbeat_ms * 2));
  std::unique_lock lock(controller_mu);
  while (!controller_cv.wait_for(lock, period, [this] { return controller_stop; })) {
    lock.unlock();
    try {
      control_once();
    } catch (const std::exception& e) {
      spdlog::warn("cache controller: {}", e.what());
    }
    lock.lock();
  }
}

void Node::Impl::control_once() {
  RoutePolicy p;
  ClusterModel c;
  {
    std::lock_guard lock(routes_mu);
    p = policy;
    c = routed_config;
  }
  if (!p.serving) return;
  auto dirty = [this](auto count) {
    return map_reduce<uint64_t>(&CoreStack::cache_actor, [count](CoreStack& core, size_t) {
      return uint64_t{count(*core.cache)};
    });
  };
  std::vector<uint32_t> clean;
  for (const auto& g : c.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), p.self) &&
        dirty([id = g.id](const CacheFacility& f) { return f.dirty_blocks_of_group(id); }) == 0)
      clean.push_back(g.id);
  // Committed straight through the cluster actor, on top of the model this
  // node routes by: the config actor (and the admin commands it serves)
  // never waits for these. A model that moved on meanwhile means the next
  // round looks again.
  auto commit = [this, &c](const ClusterModel& next, const std::string& what) {
    caf::scoped_actor self{*sys};
    std::string reply;
    self->request(cluster_actor, std::chrono::seconds(20), commit_atom::value, c.version,
                  pack_to_string(next))
        .receive([&](std::string& r) { reply = std::move(r); },
                 [&](caf::error& e) { reply = sys->render(e); });
    auto answer = nlohmann::json::parse(reply, nullptr, false);
    if (!answer.is_discarded() && answer.value("ok", false)) {
      spdlog::info("cache controller: committed {}", what);
    } else if (answer.is_discarded() || !answer.value("conflict", false)) {
      spdlog::warn("cache controller: {} not committed: {}", what,
                   answer.is_discarded() ? reply : answer.value("error", std::string()));
    }
  };
  for (const GroupTransition& t : due_transitions(c, p, clean)) {
    ClusterModel next = c;
    if (apply_transition(next, t))
      return commit(next, "I/O group " + std::to_string(t.group) +
                              (t.solo ? " run by node " + std::to_string(t.solo) + " alone"
                                      : " writing back on both nodes"));
  }
  // The handovers this node is to finish: its own (it was the owner), or
  // one it does for an old owner that is out (moved from its group). Its
  // cache may not have taken the copies over yet: any copy still held
  // waits, as does any dirty block.
  auto table = build_routes(c, p);
  for (const auto& v : c.vdisks) {
    const VdiskRoute* r = table->find(v.id);
    if (!v.handover_from || !r || r->handover_by != p.self) continue;
    if (dirty([id = v.id](const CacheFacility& f) {
          return f.dirty_blocks(id) + f.held_blocks(id);
        }) != 0)
      continue;
    ClusterModel next = c;
    if (finish_handover(next, v.id, v.handover_from))
      return commit(next, "the handover of vdisk " + v.name +
                              (v.handover_from == p.self
                                   ? std::string()
                                   : " for node " + std::to_string(v.handover_from)));
  }
}

}  // namespace sve

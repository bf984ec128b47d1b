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
  auto count = [this](auto of) {
    return map_reduce<uint64_t>(&CoreStack::cache_actor, [of](CoreStack& core, size_t) {
      return uint64_t{of(*core.cache)};
    });
  };
  auto step = next_control_step(
      c, p,
      [&](uint32_t group) {
        return count([group](const CacheFacility& f) { return f.dirty_blocks_of_group(group); });
      },
      [&](uint32_t vdisk) {
        return count([vdisk](const CacheFacility& f) {
          return f.dirty_blocks(vdisk) + f.held_blocks(vdisk);
        });
      });
  if (!step) return;
  // Committed straight through the cluster actor, on top of the model this
  // node routes by: the config actor (and the admin commands it serves)
  // never waits for these. A model that moved on meanwhile means the next
  // round looks again.
  caf::scoped_actor self{*sys};
  std::string reply;
  self->request(cluster_actor, std::chrono::seconds(20), commit_atom::value, c.version,
                pack_to_string(step->next))
      .receive([&](std::string& r) { reply = std::move(r); },
               [&](caf::error& e) { reply = sys->render(e); });
  auto answer = nlohmann::json::parse(reply, nullptr, false);
  if (!answer.is_discarded() && answer.value("ok", false)) {
    spdlog::info("cache controller: committed {}", step->what);
  } else if (answer.is_discarded() || !answer.value("conflict", false)) {
    spdlog::warn("cache controller: {} not committed: {}", step->what,
                 answer.is_discarded() ? reply : answer.value("error", std::string()));
  }
}

}  // namespace sve

// The cache facility as an actor on one core: requests from its IOClient
// arrive as io_submit, a new configuration snapshot as virt_map, who owns
// which vdisk as routes, and
// read-only questions (statistics) as tasks to run on the core. Completions
// from below come back to the facility directly on this core's thread.
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "cache/cache_facility.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

struct CacheState {
  static inline const char* name = "cache";
};

caf::behavior cache_actor(caf::stateful_actor<CacheState>*, CacheFacility* cache) {
  return {
      [=](io_submit_atom, IoRequestPtr& request) { cache->submit(std::move(request)); },
      [=](virt_map_atom, VirtMapPtr& map) { cache->set_map(std::move(map)); },
      [=](routes_atom, RoutesPtr& routes) { cache->set_routes(std::move(routes)); },
      [=](run_atom, CoreTask& task) { task(); },
  };
}

}  // namespace

caf::actor spawn_cache_actor(caf::actor_system& sys, CoreIo& core, CacheFacility& cache) {
  auto actor = sys.spawn<caf::lazy_init>(cache_actor, &cache);
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

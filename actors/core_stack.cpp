#include "actors/core_stack.hpp"

#include "actors/spawn.hpp"

namespace sve {

CoreStack build_core_stack(caf::actor_system& sys, CoreIo& io, uint32_t cache_blocks,
                           std::string cache_mode_reason) {
  CoreStack core;
  core.io = &io;
  core.backend = spawn_backend_actor(sys, io);
  core.backend_port = std::make_unique<ActorPort>(core.backend);
  core.virt = spawn_virt_actor(sys, io, *core.backend_port);
  core.virt_port = std::make_unique<ActorPort>(core.virt);
  core.cache = std::make_unique<CacheFacility>(*core.virt_port, cache_blocks,
                                               std::move(cache_mode_reason));
  core.cache_actor = spawn_cache_actor(sys, io, *core.cache);
  core.top = std::make_unique<ActorPort>(core.cache_actor);
  return core;
}

}  // namespace sve

#include "actors/core_stack.hpp"

#include "actors/spawn.hpp"

namespace sve {

CoreStack build_core_stack(caf::actor_system& sys, CoreIo& io) {
  CoreStack core;
  core.io = &io;
  core.backend = spawn_backend_actor(sys, io);
  core.backend_port = std::make_unique<ActorPort>(core.backend);
  core.virt = spawn_virt_actor(sys, io, *core.backend_port);
  core.top = std::make_unique<ActorPort>(core.virt);
  return core;
}

}  // namespace sve

// The back-end I/O actor: the single submitter of its core's io_uring engine.
// Completions are reaped by the engine and go straight back to the facility
// that sent each request, without passing through this actor again.
#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "io/uring/uring_engine.hpp"

namespace sve {
namespace {

struct BackendState {
  std::shared_ptr<UringEngine> engine;
  static inline const char* name = "backend";
};

caf::behavior backend_actor(caf::stateful_actor<BackendState>* self,
                            std::shared_ptr<UringEngine> engine) {
  self->state.engine = std::move(engine);
  return {
      [=](io_submit_atom, IoRequestPtr& request) {
        self->state.engine->submit(std::move(request));
      },
      [=](attach_atom, uint32_t mdisk_id, BlockDevicePtr& device) {
        self->state.engine->attach(mdisk_id, std::move(device));
      },
      [=](detach_atom, uint32_t mdisk_id) { self->state.engine->detach(mdisk_id); },
  };
}

}  // namespace

caf::actor spawn_backend_actor(caf::actor_system& sys, std::shared_ptr<UringEngine> engine) {
  return sys.spawn(backend_actor, std::move(engine));
}

}  // namespace sve

// The back-end I/O actor: the single submitter of its core's io_uring ring.
// Completions are reaped by the core's reactor loop and go straight back to
// the facility that sent each request, without passing through this actor.
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

struct BackendState {
  UringEngine* engine = nullptr;
  static inline const char* name = "backend";
};

caf::behavior backend_actor(caf::stateful_actor<BackendState>* self, CoreIo* core) {
  self->state.engine = &core->ring();
  return {
      [=](io_submit_atom, IoRequestPtr& request) {
        self->state.engine->submit(std::move(request));
      },
      [=](attach_atom, uint32_t mdisk_id, BlockDevicePtr& device) {
        self->state.engine->attach(mdisk_id, std::move(device));
      },
      [=](detach_atom, uint32_t mdisk_id) { self->state.engine->detach(mdisk_id); },
      [=](run_atom, CoreTask& task) { task(); },
  };
}

}  // namespace

caf::actor spawn_backend_actor(caf::actor_system& sys, CoreIo& core) {
  auto actor = sys.spawn<caf::lazy_init>(backend_actor, &core);
  pin_to_core(actor, core.index());
  return actor;
}

void run_on_core(const caf::actor& actor, std::function<void()> task) {
  caf::anon_send(actor, run_atom::value, CoreTask(std::move(task)));
}

}  // namespace sve

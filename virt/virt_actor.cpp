// The virtualization facility as an actor on one core: requests from its
// IOClient arrive as io_submit; a new configuration snapshot as virt_map.
// Its pieces' completions come back to the Virtualizer directly on this
// core's thread (the reactor reaps them), not through the mailbox.
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/reactor/core_io.hpp"
#include "virt/virtualizer.hpp"

namespace sve {
namespace {

struct VirtState {
  std::unique_ptr<Virtualizer> virt;
  static inline const char* name = "virt";
};

caf::behavior virt_actor(caf::stateful_actor<VirtState>* self, CoreIo* core,
                         IoServer* lower) {
  self->state.virt =
      std::make_unique<Virtualizer>(*lower, &core->requests(), &core->virt_requests());
  return {
      [=](io_submit_atom, IoRequestPtr& request) {
        self->state.virt->submit(std::move(request));
      },
      [=](virt_map_atom, VirtMapPtr& map) { self->state.virt->set_map(std::move(map)); },
  };
}

}  // namespace

caf::actor spawn_virt_actor(caf::actor_system& sys, CoreIo& core, IoServer& lower) {
  auto actor = sys.spawn<caf::lazy_init>(virt_actor, &core, &lower);
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

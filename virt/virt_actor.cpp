// The virtualization facility as an actor on one core: requests from its
// IOClient arrive as io_submit; a new configuration snapshot as virt_map.
// Its pieces' completions come back to the Virtualizer directly on this
// core's thread (the reactor reaps them), not through the mailbox.
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/reactor/core_io.hpp"
#include "virt/virtualizer.hpp"

namespace sve {
namespace {

struct VirtState {
  std::unique_ptr<Virtualizer> virt;
  ActorProbe probe;
  static inline const char* name = "virt";
};

caf::behavior virt_actor(caf::stateful_actor<VirtState>* self, CoreIo* core,
                         IoServer* lower) {
  self->state.virt =
      std::make_unique<Virtualizer>(*lower, &core->requests(),
                                    core->facility_requests(kVirtFacility));
  self->state.probe = {"virt/" + std::to_string(core->index()), "facility",
                       static_cast<int>(core->index())};
  auto& probe = self->state.probe;
  return {
      [=, &probe](io_submit_atom, IoRequestPtr& request) {
        note(self, probe);
        self->state.virt->submit(std::move(request));
      },
      [=, &probe](virt_map_atom, VirtMapPtr& map) {
        note(self, probe);
        self->state.virt->set_map(std::move(map));
      },
      [=, &probe](trace_atom, uint32_t n) { probe.start_trace(n); },
      [=, &probe](inspect_atom) {
        const VirtualizerStats& s = self->state.virt->stats();
        return probe.answer(self->mailbox().size(),
                            {{"requests", s.requests}, {"pieces", s.pieces},
                             {"split_requests", s.split_requests},
                             {"waited_for_pieces", s.waited_for_pieces},
                             {"waiting", self->state.virt->waiting()}});
      },
  };
}

}  // namespace

caf::actor spawn_virt_actor(caf::actor_system& sys, CoreIo& core, IoServer& lower) {
  auto actor = sys.spawn<caf::lazy_init>(virt_actor, &core, &lower);
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

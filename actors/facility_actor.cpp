#include "actors/facility_actor.hpp"

#include <chrono>
#include <string>

#include "actors/messages.hpp"
#include "actors/probe_note.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "facility/facility.hpp"

namespace sve {
namespace {

struct FacilityState {
  ActorProbe probe;
  static inline const char* name = "facility";
};

using Self = caf::stateful_actor<FacilityState>;

caf::behavior facility_actor(Self* self, Facility* f, unsigned core, FacilityExtras extras) {
  self->state.probe = {std::string(f->kind()) + "/" + std::to_string(core), f->role(),
                       static_cast<int>(core)};
  auto& probe = self->state.probe;
  if (f->tick_ms()) self->send(self, tick_atom::value);
  caf::message_handler common{
      [=, &probe](io_submit_atom, IoRequestPtr& request) {
        note(self, probe);
        f->submit(std::move(request));
      },
      [=, &probe](io_done_atom, IoRequestPtr& request) {
        note(self, probe);
        f->io_done(std::move(request));
      },
      [=, &probe](view_atom, FacilityView& view) {
        note(self, probe);
        f->set_view(view);
      },
      [=](tick_atom) {
        f->tick(monotonic_ms());
        self->delayed_send(self, std::chrono::milliseconds(f->tick_ms()), tick_atom::value);
      },
      [=](run_atom, CoreTask& task) { task(); },
      [=, &probe](trace_atom, uint32_t n) { probe.start_trace(n); },
      [=, &probe](inspect_atom) { return probe.answer(self->mailbox().size(), f->inspect()); },
  };
  if (!extras) return common;
  return extras(self).or_else(common);
}

}  // namespace

caf::actor spawn_facility_actor(caf::actor_system& sys, unsigned core, Facility& facility,
                                FacilityExtras extras) {
  auto actor = sys.spawn<caf::lazy_init>(facility_actor, &facility, core, std::move(extras));
  pin_to_core(actor, core);
  return actor;
}

}  // namespace sve

#pragma once
// The behavior of the generic facility actor (actors/facility_actor.hpp),
// for the files that spawn a facility with messages of its own: those
// handlers are appended to the common ones in one flat list, so the hot
// message (io_submit) is matched first and no handler chain is walked.
// Brings in CAF: included only by actor definitions.
#include <chrono>
#include <string>

#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/probe_note.hpp"
#include "facility/facility.hpp"

namespace sve {

struct FacilityState {
  ActorProbe probe;
  static inline const char* name = "facility";
};
using FacilitySelf = caf::stateful_actor<FacilityState>;

// Pins a facility's actor (spawned with caf::lazy_init) to its core and
// starts it there. Requests reach a facility by direct calls, so its actor
// may get no message for a long time; its ticks (a stall's end, destage)
// start when its behavior does, so it is started at once.
inline void start_on_core(const caf::actor& actor, unsigned core) {
  pin_to_core(actor, core);
  caf::anon_send(actor, run_atom::value, CoreTask([] {}));
}

template <class... Extras>
caf::behavior facility_behavior(FacilitySelf* self, Facility* f, unsigned core,
                                Extras... extras) {
  self->state.probe = {std::string(f->kind()) + "/" + std::to_string(core), f->role(),
                       static_cast<int>(core)};
  auto& probe = self->state.probe;
  if (f->tick_ms()) self->send(self, tick_atom::value);
  return guarded_behavior(
      self, &self->state.probe.name,
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
      std::move(extras)...);
}

}  // namespace sve

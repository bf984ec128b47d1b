// The forward facility as an actor on one core, the top of the core's
// stack: requests from the front end arrive as io_submit, the completions
// of forwarded requests come back as io_done (from the interconnect), and
// a new route table as routes.
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/interconnect/forward_facility.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

struct ForwardState {
  ActorProbe probe;
  static inline const char* name = "forward";
};

caf::behavior forward_actor(caf::stateful_actor<ForwardState>* self, ForwardFacility* forward,
                            int core) {
  self->state.probe = {"forward/" + std::to_string(core), "facility", core};
  auto& probe = self->state.probe;
  return {
      [=, &probe](io_submit_atom, IoRequestPtr& request) {
        note(self, probe);
        forward->submit(std::move(request));
      },
      [=, &probe](io_done_atom, IoRequestPtr& request) {
        note(self, probe);
        forward->io_done(std::move(request));
      },
      [=, &probe](routes_atom, RoutesPtr& routes) {
        note(self, probe);
        forward->set_routes(std::move(routes));
      },
      [=](run_atom, CoreTask& task) { task(); },
      [=, &probe](trace_atom, uint32_t n) { probe.start_trace(n); },
      [=, &probe](inspect_atom) {
        const ForwardStats& s = forward->stats();
        return probe.answer(self->mailbox().size(), {{"local", s.local},
                                                     {"forwarded", s.forwarded},
                                                     {"refused", s.refused}});
      },
  };
}

}  // namespace

caf::actor spawn_forward_actor(caf::actor_system& sys, CoreIo& core, ForwardFacility& forward) {
  auto actor = sys.spawn<caf::lazy_init>(forward_actor, &forward, static_cast<int>(core.index()));
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

// The forward facility as an actor on one core, the top of the core's
// stack: requests from the front end arrive as io_submit, the completions
// of forwarded requests come back as io_done (from the interconnect), and
// a new route table as routes.
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/interconnect/forward_facility.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

struct ForwardState {
  static inline const char* name = "forward";
};

caf::behavior forward_actor(caf::stateful_actor<ForwardState>*, ForwardFacility* forward) {
  return {
      [=](io_submit_atom, IoRequestPtr& request) { forward->submit(std::move(request)); },
      [=](io_done_atom, IoRequestPtr& request) { forward->io_done(std::move(request)); },
      [=](routes_atom, RoutesPtr& routes) { forward->set_routes(std::move(routes)); },
      [=](run_atom, CoreTask& task) { task(); },
  };
}

}  // namespace

caf::actor spawn_forward_actor(caf::actor_system& sys, CoreIo& core, ForwardFacility& forward) {
  auto actor = sys.spawn<caf::lazy_init>(forward_actor, &forward);
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

#include "actors/facility_actor.hpp"

#include "actors/facility_behavior.hpp"
#include "actors/reactor/reactor_scheduler.hpp"

namespace sve {

namespace {

caf::behavior facility_actor(FacilitySelf* self, Facility* f, unsigned core) {
  return facility_behavior(self, f, core);
}

}  // namespace

// (Arguments travel as spawn arguments, not captures: CAF 0.17 binds a
// reference to a null tuple when a function is spawned with none, which
// UBSan reports.)
caf::actor spawn_facility_actor(caf::actor_system& sys, unsigned core, Facility& facility) {
  auto actor = sys.spawn<caf::lazy_init>(facility_actor, &facility, core);
  start_on_core(actor, core);
  return actor;
}

}  // namespace sve

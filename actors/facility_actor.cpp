#include "actors/facility_actor.hpp"

#include "actors/facility_behavior.hpp"
#include "actors/reactor/reactor_scheduler.hpp"

namespace sve {

caf::actor spawn_facility_actor(caf::actor_system& sys, unsigned core, Facility& facility) {
  auto actor = sys.spawn<caf::lazy_init>(
      [f = &facility, core](FacilitySelf* self) { return facility_behavior(self, f, core); });
  pin_to_core(actor, core);
  return actor;
}

}  // namespace sve

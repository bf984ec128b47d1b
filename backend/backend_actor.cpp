// The back end's actor: the generic facility actor, plus the devices the
// node attaches and detaches as the model changes.
#include "actors/facility_behavior.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "backend/backend_facility.hpp"

namespace sve {

caf::actor spawn_backend_actor(caf::actor_system& sys, unsigned core, BackendFacility& backend) {
  auto init = [](FacilitySelf* self, BackendFacility* b, unsigned at) {
    return facility_behavior(
        self, b, at,
        [b](attach_atom, uint32_t mdisk_id, BlockDevicePtr& device) {
          b->attach(mdisk_id, std::move(device));
        },
        [b](detach_atom, uint32_t mdisk_id) { b->detach(mdisk_id); });
  };
  auto actor = sys.spawn<caf::lazy_init>(init, &backend, core);
  start_on_core(actor, core);
  return actor;
}

void run_on_core(const caf::actor& actor, std::function<void()> task) {
  caf::anon_send(actor, run_atom::value, CoreTask(std::move(task)));
}

}  // namespace sve

// The back end's actor: the generic facility actor, plus the devices the
// node attaches and detaches as the model changes.
#include "actors/facility_actor.hpp"
#include "actors/messages.hpp"
#include "actors/probe_note.hpp"
#include "actors/spawn.hpp"
#include "backend/backend_facility.hpp"

namespace sve {

caf::actor spawn_backend_actor(caf::actor_system& sys, unsigned core, BackendFacility& backend) {
  return spawn_facility_actor(sys, core, backend, [&backend](caf::event_based_actor*) {
    return caf::message_handler{
        [&backend](attach_atom, uint32_t mdisk_id, BlockDevicePtr& device) {
          backend.ring().attach(mdisk_id, std::move(device));
        },
        [&backend](detach_atom, uint32_t mdisk_id) { backend.ring().detach(mdisk_id); },
    };
  });
}

void run_on_core(const caf::actor& actor, std::function<void()> task) {
  caf::anon_send(actor, run_atom::value, CoreTask(std::move(task)));
}

}  // namespace sve

#pragma once
// The one actor that runs any facility (facility/facility.hpp) on its core:
// requests arrive as io_submit, completions from below as io_done, a new
// model or route snapshot as view, and the actor ticks the facility as
// often as it asks. `inspect` and `trace` answer the debug shell, `run`
// runs a task on the core. A facility with messages of its own (the
// cache's mirror copies, the back end's devices) passes `extras`, made
// with the actor in hand. Only caf/fwd.hpp here.
#include <caf/fwd.hpp>

#include <functional>

namespace sve {

class Facility;

using FacilityExtras = std::function<caf::message_handler(caf::event_based_actor* self)>;

// The actor of `facility` (kept alive by the caller until the actor is
// done), pinned to `core`.
caf::actor spawn_facility_actor(caf::actor_system& sys, unsigned core, Facility& facility,
                                FacilityExtras extras = {});

}  // namespace sve

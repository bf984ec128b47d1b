#pragma once
// The one actor that runs any facility (facility/facility.hpp) on its core:
// requests arrive as io_submit, completions from below as io_done, a new
// model or route snapshot as view, and the actor ticks the facility as
// often as it asks. `inspect` and `trace` answer the debug shell, `run`
// runs a task on the core. A facility with messages of its own (the
// cache's mirror copies, the back end's devices) is spawned with its extra
// handlers through actors/facility_behavior.hpp. Only caf/fwd.hpp here.
#include <caf/fwd.hpp>

namespace sve {

class Facility;

// The actor of `facility` (kept alive by the caller until the actor is
// done), pinned to `core`.
caf::actor spawn_facility_actor(caf::actor_system& sys, unsigned core, Facility& facility);

}  // namespace sve

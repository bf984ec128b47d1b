#pragma once
// Spawn functions of SVE's actors. Only caf/fwd.hpp here, so including this
// costs little; the actors' definitions live in their components.
#include <caf/fwd.hpp>

#include <functional>
#include <memory>

namespace sve {

class IoServer;
class CoreIo;
class ConfigService;

// The back end: the I/O actor of `core`, the single submitter of its ring.
// It also runs set-up tasks on its core (run_atom).
caf::actor spawn_backend_actor(caf::actor_system& sys, CoreIo& core);

// Virtualization on `core`: maps vdisk requests onto mdisk pieces for
// `lower`, with piece contexts from the core's request pool.
caf::actor spawn_virt_actor(caf::actor_system& sys, CoreIo& core, IoServer& lower);

// Configuration: applies admin requests; `publish` runs on the actor's
// thread after every committed change.
caf::actor spawn_config_actor(caf::actor_system& sys, std::shared_ptr<ConfigService> service,
                              std::function<void()> publish);

// Runs `task` on the core of `actor` (a pinned facility actor).
void run_on_core(const caf::actor& actor, std::function<void()> task);

}  // namespace sve

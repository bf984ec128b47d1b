#pragma once
// Spawn functions of SVE's actors. Only caf/fwd.hpp here, so including this
// costs little; the actors' definitions live in their components.
#include <caf/fwd.hpp>

#include <functional>
#include <memory>

namespace sve {

class IoServer;
class UringEngine;
class ConfigService;

// The back end: a per-core I/O actor that owns one io_uring engine.
caf::actor spawn_backend_actor(caf::actor_system& sys, std::shared_ptr<UringEngine> engine);

// Virtualization: maps vdisk requests onto mdisk pieces for `lower`.
caf::actor spawn_virt_actor(caf::actor_system& sys, std::shared_ptr<IoServer> lower);

// Configuration: applies admin requests; `publish` runs on the actor's
// thread after every committed change.
caf::actor spawn_config_actor(caf::actor_system& sys, std::shared_ptr<ConfigService> service,
                              std::function<void()> publish);

}  // namespace sve

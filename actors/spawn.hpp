#pragma once
// Spawn functions of SVE's actors. Only caf/fwd.hpp here, so including this
// costs little; the actors' definitions live in their components.
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>

namespace sve {

class IoServer;
class CoreIo;
class ConfigService;
class ServiceGate;
class CacheFacility;

// The back end: the I/O actor of `core`, the single submitter of its ring.
// It also runs set-up tasks on its core (run_atom).
caf::actor spawn_backend_actor(caf::actor_system& sys, CoreIo& core);

// Virtualization on `core`: maps vdisk requests onto mdisk pieces for
// `lower`, with piece contexts from the core's request pool.
caf::actor spawn_virt_actor(caf::actor_system& sys, CoreIo& core, IoServer& lower);

// The cache partition of `core`: runs `cache` (which the caller keeps
// alive until the actor is done) on the core's thread.
caf::actor spawn_cache_actor(caf::actor_system& sys, CoreIo& core, CacheFacility& cache);

// Configuration: applies admin requests; `publish` runs on the actor's
// thread after every committed change.
caf::actor spawn_config_actor(caf::actor_system& sys, std::shared_ptr<ConfigService> service,
                              std::function<void()> publish);

// The cluster actor: hosts this node's cluster protocol and RSMs (see
// cluster/host/cluster_host.hpp), talks to the other nodes' cluster actors
// over the middleman, and answers cluster admin requests. `model_changed`
// gets every committed virtualization model (msgpack NodeConfig), on the
// actor's thread; the gate follows this node's lease.
struct ClusterActorSetup {
  uint32_t self = 0;
  std::string address;  // HOST:PORT, as other nodes reach it
  std::string data_dir;
  std::string quorum_path;
  uint64_t heartbeat_ms = 100;
  uint64_t lease_ms = 3000;
  uint64_t log_keep = 256;
  std::string seed;  // msgpack NodeConfig a new cluster starts from
  std::function<void(std::string)> model_changed;
  ServiceGate* gate = nullptr;
};
caf::actor spawn_cluster_actor(caf::actor_system& sys, ClusterActorSetup setup);
// The heartbeat link to one peer (cluster/peer_link_actor.cpp): carries the
// cluster actor's messages to that peer, connecting and reconnecting.
// `owner` is the cluster actor, in whose name it sends.
caf::actor spawn_peer_link(caf::actor_system& sys, caf::actor owner, uint32_t peer,
                           std::string address);

// Runs `task` on the core of `actor` (a pinned facility actor).
void run_on_core(const caf::actor& actor, std::function<void()> task);

}  // namespace sve

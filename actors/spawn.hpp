#pragma once
// Spawn functions of SVE's actors. Only caf/fwd.hpp here, so including this
// costs little; the actors' definitions live in their components.
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sve {

class NetFaults;
class ClusterKey;
namespace channel {
class ClusterTunnel;
}
class MdiskFaults;

class IoServer;
class CoreIo;
class ConfigService;
class ServiceGate;
class CacheFacility;
class MirrorLink;
class ForwardFacility;
class BackendFacility;
struct ClusterView;

// Facilities without messages of their own run in the generic facility
// actor (actors/facility_actor.hpp); these two have some.

// The back end of `core`: the generic actor, plus attach / detach of the
// model's devices. It also runs set-up tasks on its core (run_atom).
caf::actor spawn_backend_actor(caf::actor_system& sys, unsigned core, BackendFacility& backend);

// The cache partition of `core`: runs `cache` (which the caller keeps
// alive until the actor is done) on the core's thread. `link`, if any, made
// by make_mirror_link, is how the partition's copies reach the partner.
caf::actor spawn_cache_actor(caf::actor_system& sys, unsigned core, CacheFacility& cache,
                             MirrorLink* link);
std::unique_ptr<MirrorLink> make_mirror_link(caf::actor interconnect);

// The node's interconnect: carries requests for vdisks other nodes own to
// them, and executes the requests other nodes send for vdisks this node
// owns, on the stack of the core that owns each (the cache actors it is
// sent with attach, by vdisk id modulo their number); carries the cache's
// copies to the partner node the same way. `retry_ms`: how long a
// forwarded request keeps trying (the owner may be changing) before it
// fails with EIO.
// What the node tells each peer it reaches of its own ports, and is told of
// theirs, on the interconnect's thread: where its data channel listens
// (`data_port`, 0: none) and its iSCSI portal (`iscsi_portal`, HOST:PORT;
// empty: none; a wildcard host is told as the peer's cluster host). And
// the resets hosts made through a peer's target port (`on_peer_reset`: a
// vdisk's LUNs, or all; it calls `done`, from any thread, once this node's
// sessions have their tasks for the unit out of the stacks): a node sends
// its own with lun_reset_atom.
using DataPortFound = std::function<void(uint32_t node, const std::string& host, uint16_t port)>;
struct PeerPorts {
  uint16_t data_port = 0;
  std::string iscsi_portal;
  DataPortFound on_data_port;
  DataPortFound on_iscsi_portal;
  std::function<void(uint32_t vdisk, bool all, std::function<void()> done)> on_peer_reset;
  // The configuration version this node's host ports enforce (applied_atom;
  // none: no port that enforces anything).
  std::function<uint64_t()> applied_version;
};
// `tunnel`: the node's way to other nodes' cluster ports (null: straight).
caf::actor spawn_interconnect_actor(caf::actor_system& sys, uint32_t self,
                                    const ServiceGate* gate, uint64_t retry_ms,
                                    PeerPorts ports = {},
                                    std::shared_ptr<channel::ClusterTunnel> tunnel = nullptr);

// Configuration: applies admin requests; `publish` runs on the actor's
// thread after every committed change.
caf::actor spawn_config_actor(caf::actor_system& sys, std::shared_ptr<ConfigService> service,
                              std::function<void()> publish);

// The cluster actor: hosts this node's cluster protocol and RSMs (see
// cluster/host/cluster_host.hpp), talks to the other nodes' cluster actors
// over the middleman, and answers cluster admin requests. `model_changed`
// gets every committed virtualization model (msgpack ClusterModel), on the
// actor's thread; the gate follows this node's lease.
struct ClusterActorSetup {
  uint32_t self = 0;
  std::string address;  // HOST:PORT, as other nodes reach it
  std::string data_dir;
  std::string quorum_path;
  uint64_t heartbeat_ms = 100;
  uint64_t lease_ms = 3000;
  uint64_t log_keep = 256;
  std::string seed;  // msgpack ClusterModel a new cluster starts from
  std::function<void(std::string)> model_changed;
  // Called (on the cluster actor's thread) when the view changes, before
  // the gate opens on it: what the data path routes by is in place first.
  std::function<void(const ClusterView&)> view_changed;
  ServiceGate* gate = nullptr;
  std::shared_ptr<NetFaults> net_faults;  // the chaos monkey's, or null
  // The links' secret: made at cluster.create, installed by
  // cluster.join_key (io/auth/cluster_key.hpp); and the tunnel the links
  // pass through (io/channel/cluster_tunnel.hpp). Null: none (a test).
  std::shared_ptr<ClusterKey> key;
  std::shared_ptr<channel::ClusterTunnel> tunnel;
};
caf::actor spawn_cluster_actor(caf::actor_system& sys, ClusterActorSetup setup);
// The heartbeat link to one peer (cluster/peer_link_actor.cpp): carries the
// cluster actor's messages to that peer, connecting and reconnecting.
// `owner` is the cluster actor, in whose name it sends.
caf::actor spawn_peer_link(caf::actor_system& sys, caf::actor owner, uint32_t peer,
                           std::string address,
                           std::shared_ptr<channel::ClusterTunnel> tunnel = nullptr);

// The chaos monkey (node/chaos/chaos_actor.cpp): answers admin_atom
// requests chaos.start / chaos.stop / chaos.report; in a cluster, the
// node then sends it (cluster_atom, the cluster actor).
struct ChaosActorSetup {
  uint32_t self = 0;
  std::string data_dir;        // its settings and log
  bool supervised = false;     // a configuration process restarts this one
  std::function<void(uint32_t ms)> hold_down;  // keeps the node down after kill-node
  std::shared_ptr<NetFaults> net;
  std::shared_ptr<MdiskFaults> mdisks;
  std::function<std::vector<uint32_t>()> mdisk_ids;  // the model's
};
caf::actor spawn_chaos_actor(caf::actor_system& sys, ChaosActorSetup setup);

// Runs `task` on the core of `actor` (a pinned facility actor).
void run_on_core(const caf::actor& actor, std::function<void()> task);

}  // namespace sve

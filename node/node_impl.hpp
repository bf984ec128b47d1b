#pragma once
// The inside of a node (node/node.hpp), shared by the files that each do
// one of its jobs: node.cpp (assembly and shutdown), publish.cpp (the model
// to the data path), cluster_link.cpp (configuration committed through the
// cluster), admin_router.cpp (the admin API), debug_shell.cpp (the actors'
// own state), node_stats.cpp (the data path's counters, the cache's
// figures) and cache_controller.cpp (I/O-group transitions, handovers).
// Included only by those: it brings in CAF.
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <stdexcept>
#include <functional>
#include <map>
#include <tuple>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "cluster/audit_log.hpp"
#include "node/rest_server.hpp"
#include "io/auth/cluster_key.hpp"
#include "io/channel/channel_listener.hpp"
#include "io/channel/cluster_tunnel.hpp"
#include "actors/actor_port.hpp"
#include "admin/admin_server.hpp"
#include "admin/login_guard.hpp"
#include "cluster/cluster_view.hpp"
#include "cluster/config_service.hpp"
#include "faults/net_faults.hpp"
#include "faults/mdisk_faults.hpp"
#include "io/iscsi/port/iscsi_port.hpp"
#include "model/host_paths.hpp"
#include "io/nbd/nbd_port.hpp"
#include "io/reactor/core_io.hpp"
#include "io/service_gate.hpp"
#include "model/ownership.hpp"
#include "node/core_stack.hpp"
#include "node/node.hpp"

namespace sve {

struct Node::Impl {
  NodeOptions options;
  std::vector<std::unique_ptr<CoreIo>> core_io;  // outlive the actor system
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<ConfigService> config;
  caf::actor config_actor;
  caf::actor cluster_actor;
  caf::actor chaos_actor;
  // The chaos monkey's faults, consulted by the rings and the cluster actor.
  std::shared_ptr<MdiskFaults> mdisk_faults = std::make_shared<MdiskFaults>();
  std::shared_ptr<NetFaults> net_faults = std::make_shared<NetFaults>();
  ServiceGate gate;  // in a cluster: open while this node holds a lease
  std::vector<CoreStack> cores;
  std::unique_ptr<NbdPort> nbd;
  std::unique_ptr<IscsiPort> iscsi;
  std::unique_ptr<AdminServer> admin;
  std::set<uint32_t> published_devices;
  bool stopped = false;
  uint32_t cache_blocks = 0;  // per core
  // In a cluster: the interconnect to other nodes, and what routes are
  // computed from (the committed model and the cluster view), which the
  // config and cluster actors each update on their own threads.
  caf::actor interconnect;
  std::unique_ptr<ActorPort> interconnect_port;
  // The data channel's listener (the cache's copies between partners), and
  // whether the cores are there to take its connections.
  std::unique_ptr<channel::ChannelListener> channel_listener;
  std::shared_ptr<ClusterKey> cluster_key;  // in a cluster: the links' secret
  std::shared_ptr<channel::ClusterTunnel> tunnel;  // and the way the cluster links go
  // The audit log: a node alone keeps its own (in a cluster: the cluster's).
  std::unique_ptr<AuditFile> audit_file;
  std::unique_ptr<RestServer> rest;
  static constexpr uint64_t kAuditRefusalsPerSecond = 20;
  std::mutex audit_mu;
  uint64_t audit_second = 0, audit_refusals = 0, audit_suppressed = 0;
  LoginGuard logins;  // wrong passwords in a row lock a user out, from that address
  std::atomic<bool> channels_ready{false};
  std::atomic<bool> iscsi_ready{false};  // `iscsi` is there (peers' portals arrive)
  void close_data_channels();
  // How long hosts are asked to wait while this node is between
  // generations (NBD's requests held, iSCSI's port transitioning).
  uint64_t between_generations_ms() const;
  std::mutex routes_mu;
  ClusterModel routed_config;
  ClusterView view;
  RoutePolicy policy;  // the last routes were built with
  std::shared_ptr<const HostPaths> host_paths;  // from the last routes (vdisk show, ALUA)
  // A core's non-volatile memory started empty: the group's epoch in force
  // when this node first serves is not trusted (RoutePolicy::untrusted_epoch).
  bool cache_lost = false;
  uint64_t untrusted_epoch = 0;
  std::vector<uint32_t> lost_handovers;

  // The cache controller, an actor: commits the I/O groups' cache state
  // changes this node is due to make and the handovers it is to finish
  // (model/ownership.hpp, next_control_step), checking every few heartbeats.
  caf::actor controller;
  caf::actor spawn_controller();
  // The thin controller (thin_controller.cpp): grows thin vdisks' real
  // capacity when their cores ask.
  caf::actor thin_controller;
  caf::actor spawn_thin_controller();
  void grow_thin(ThinFacility* thin, const caf::actor& on,
                 const std::vector<GrowthRequest>& wants);
  // The copy controller (flashcopy_controller.cpp): commits the steps of
  // point-in-time copies whose sources this node executes, as its cores
  // report them; and what `fcmap show` / `fcmap list` add from them.
  caf::actor copy_controller;
  caf::actor spawn_copy_controller();
  void copy_events(unsigned core, const std::vector<CopyEvent>& events);
  std::map<std::tuple<uint32_t, int, uint64_t>, std::set<unsigned>> copy_reports;
  std::string show_fcmaps(const std::string& line, bool list);
  // `vdisk check` / `pool check`, and what `vdisk show` / `pool list` add
  // from the data path (thin_controller.cpp).
  std::string check_thin(const nlohmann::json& request);
  nlohmann::json thin_json(uint32_t vdisk);
  std::string list_pools(const std::string& line);
  // On the way out: destage what the caches hold (while the lease lasts),
  // so that the partner need not take it over and a group running alone
  // does not go offline with it. Waits at most 30 s.
  void destage_before_stop();

  void publish();
  // Waits until every core has applied what publish() sent it (the devices
  // its back end holds, the views of its layers).
  void await_published();
  // SCSI reservations (node/reservations.cpp): a host's request, applied by
  // the cluster; `done` once every node's ports enforce the outcome.
  void reserve(uint32_t vdisk, const Nexus& who, const ReservationRequest& request,
               std::function<void(ReservationOutcome)> done);
  void await_enforced(uint64_t version, std::chrono::milliseconds wait, std::function<void()> done);
  // svectl vdisk clear-reservations: committed, then answered once every
  // node enforces it (as a host's PERSISTENT RESERVE OUT is).
  std::string clear_reservations(const std::string& line);
  void publish_routes();  // with routes_mu held
  static constexpr uint64_t kPoolWarningPct = 80;
  std::set<uint32_t> pools_warned;  // at or over kPoolWarningPct
  void note_pool_usage(const ClusterModel& model);
  void on_view(const ClusterView& view);
  // Runs `fn` on core `i`'s thread (through the actor `on`) and returns
  // its answer; throws if the core does not answer within 5 s.
  template <class T>
  T ask_core(size_t i, const caf::actor& on, std::function<T()> fn);
  // Runs `fn(core, i)` on every core's thread (through the actor `on`
  // picks) and sums the answers with +=: Seastar's sharded::map_reduce.
  template <class T, class Fn>
  T map_reduce(caf::actor CoreStack::*on, Fn fn) {
    T total{};
    for (size_t i = 0; i < cores.size(); ++i) {
      CoreStack* core = &cores[i];
      total += ask_core<T>(i, core->*on, [core, i, fn] { return fn(*core, i); });
    }
    return total;
  }
  nlohmann::json cache_json(std::optional<uint32_t> vdisk);
  std::string show_vdisk(const std::string& line);
  nlohmann::json paths_json(uint32_t vdisk);
  // The debug shell: every actor of the node, each asked to describe
  // itself (an inspect message; actors/actor_probe.hpp).
  std::vector<std::pair<std::string, caf::actor>> actor_list();
  nlohmann::json inspect(const caf::actor& actor);
  std::string shell(const nlohmann::json& request);
  std::string call_config(const std::string& line);
  std::string hand_key(const nlohmann::json& request);
  std::string create_cluster(const nlohmann::json& request);
  Status init_admin(Node& node, const std::pair<std::string, std::string>& user);
  std::string call_cluster(const std::string& line);
  ClusterLink cluster_link();
  // `peer`: the client's address (where a supervised node's configuration
  // process relays, the "from" it wrote in); `trusted`: the node's own call.
  std::string route_admin(Node& node, const std::string& line, const std::string& peer,
                          bool trusted = false);
  // Who sent it, and whether they may (docs/security.md): the error line to
  // answer, or empty; `request` loses its credentials either way.
  std::string admit(nlohmann::json& request, const std::string& peer, std::string& who,
                    std::string& from);
  void audit(const std::string& who, const std::string& from, const nlohmann::json& request,
             bool ok, const std::string& result);
  std::string route_admitted(Node& node, const nlohmann::json& request);
  // session.login, once admitted with a password: a token for its user.
  std::string login(const nlohmann::json& request, const std::string& who);
};

void run_on_core(const caf::actor& actor, std::function<void()> task);

template <class T>
T Node::Impl::ask_core(size_t i, const caf::actor& on, std::function<T()> fn) {
  // Shared, in case the answer comes too late.
  auto done = std::make_shared<std::promise<T>>();
  auto answer = done->get_future();
  run_on_core(on, [done, fn = std::move(fn)] { done->set_value(fn()); });
  if (answer.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw std::runtime_error("core " + std::to_string(i) + " did not answer within 5 s");
  return answer.get();
}

}  // namespace sve

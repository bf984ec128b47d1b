// A node's assembly and shutdown: the listeners, the configuration, each
// core's ring, pools and facility stack, the actors, the host and admin
// ports, in that order; and back down again.
#include "node/node.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <random>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include <caf/io/all.hpp>

#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "admin/admin_client.hpp"
#include "cluster/state/cluster_state.hpp"
#include "io/iscsi/iscsi_units.hpp"
#include "io/tls/admin_tls.hpp"
#include "node/node_impl.hpp"
#include "util/size.hpp"
#include "virt/virtualizer.hpp"

namespace sve {

namespace {

// The non-volatile memory of core `index`'s cache partition: room for its
// own dirty blocks and the partner's copies, with some to spare.
Result<std::unique_ptr<Nvram>> open_core_nvram(const std::string& data_dir, unsigned index,
                                               uint32_t blocks) {
  return Nvram::open(data_dir + "/nvram-core" + std::to_string(index), 2 * blocks + 64);
}

// How long the actor system may take to go once every actor has finished.
constexpr std::chrono::seconds kTeardownLimit{10};

}  // namespace

Node::Node() : impl_(new Impl()) {}

// As long as the interconnect tries to reach an owner: a generation that
// leaves a node out opens a lease and a margin after it formed.
uint64_t Node::Impl::between_generations_ms() const { return uint64_t{options.lease_ms} * 3; }

Node::~Node() { stop(); }

Result<std::unique_ptr<Node>> Node::start(const NodeOptions& options) {
  std::unique_ptr<Node> node(new Node());
  Impl& m = *node->impl_;
  m.options = options;

  auto listen = [](int given, const HostPortAddress& address) -> Result<UniqueFd> {
    if (given >= 0) return UniqueFd(given);
    return listen_tcp(address);
  };
  auto nbd_listener = listen(options.nbd_fd, options.nbd);
  if (!nbd_listener) return nbd_listener.error();
  Result<UniqueFd> iscsi_listener = UniqueFd();
  if (options.iscsi) iscsi_listener = listen(options.iscsi_fd, *options.iscsi);
  if (!iscsi_listener) return iscsi_listener.error();
  std::shared_ptr<TlsServer> tls;
  if (options.tls != TlsMode::off) {
    auto loaded = TlsServer::load(options.tls_psk, options.tls_certificates);
    if (!loaded) return loaded.error();
    tls = loaded.value();
    if (!options.tls_psk.empty())
      spdlog::info("nbd: TLS {} with {} pre-shared keys from {}", to_string(options.tls),
                   tls->identities(), options.tls_psk);
    if (!options.tls_certificates.empty())
      spdlog::info("nbd: TLS {} with the certificates of {}", to_string(options.tls),
                   options.tls_certificates);
  }
  auto admin_listener = listen(options.admin_fd, options.admin);
  if (!admin_listener) return admin_listener.error();

  auto config = options.cluster ? ConfigService::open_clustered(options.data_dir, m.cluster_link())
                                : ConfigService::open(options.data_dir);
  if (!options.cluster) m.audit_file = std::make_unique<AuditFile>(options.data_dir + "/audit.log");
  if (!config) return config.error();
  m.config = std::move(config.value());

  // Each core's ring, buffers and request pool exist before its reactor.
  unsigned cores = std::max(1u, options.cores);
  std::vector<CoreIo*> io;
  for (unsigned i = 0; i < cores; ++i) {
    auto core = CoreIo::create(i, options.core_io, {{kVirtFacility, kVirtRequestReserve}});
    if (!core) return core.error();
    io.push_back(core.value().get());
    m.core_io.push_back(std::move(core.value()));
  }
  install_reactor_scheduler(m.cfg, io, options.pin, 0, options.poll_us);
  if (options.cluster) {
    // Every connection between nodes proves the cluster key first: the
    // cluster links through the tunnel on the cluster address (CAF's
    // middleman listens on loopback behind it), the data channels at
    // their listener.
    m.cluster_key = std::make_shared<ClusterKey>(options.data_dir);
    if (auto made = m.cluster_key->ensure(); !made) return made.error();
    auto tunnel = channel::ClusterTunnel::open(*options.cluster, options.node_id, m.cluster_key);
    if (!tunnel)
      return make_error("cannot listen on cluster address " + options.cluster->to_string() +
                            ": " + tunnel.error().message,
                        EADDRINUSE);
    m.tunnel = std::move(tunnel.value());
    m.cfg.load<caf::io::middleman>();
    // Sent between nodes and not among CAF's built-in types: the block
    // numbers and versions of the cache's copies.
    m.cfg.add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
  }
  m.cfg.set("logger.verbosity", caf::atom("quiet"));
  m.sys = std::make_unique<caf::actor_system>(m.cfg);
  bind_reactor_workers(*m.sys);
  m.cache_blocks = static_cast<uint32_t>(options.cache_bytes / 4096 / cores);
  // This process, as its data channels introduce it.
  uint64_t instance = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  // In a cluster, requests for vdisks other nodes own, and the cache's
  // copies for the partner, travel on a data channel per core
  // (io/channel/), or through the interconnect actor when the channel
  // cannot carry them. The channel's listener is on the cluster host, on a
  // port the kernel picks; the interconnect tells the other nodes.
  bool data_channel = options.cluster && options.data_channel;
  if (data_channel) {
    auto listener = channel::ChannelListener::open(
        options.cluster->host, m.cluster_key,
        [&m](UniqueFd socket, const channel::FrameHeader& hello,
             const channel::SessionKeys& keys) {
          if (!m.channels_ready.load()) return;  // the caller tries again
          auto& core = m.cores[hello.core % m.cores.size()];
          channel::PeerChannels* channels = core.channels.get();
          if (!channels) return;
          int fd = socket.release();
          run_on_core(core.cache_actor,
                      [channels, fd, hello, keys] {
                        channels->accept(UniqueFd(fd), hello, keys);
                      });
        });
    if (!listener) return listener.error();
    m.channel_listener = std::move(listener.value());
  }
  if (options.cluster) {
    PeerPorts ports;
    if (data_channel) {
      ports.data_port = m.channel_listener->port();
      ports.on_data_port = [&m](uint32_t node, const std::string& host, uint16_t port) {
        if (!m.channels_ready.load()) return;
        for (auto& core : m.cores)
          run_on_core(core.cache_actor, [channels = core.channels.get(), node, host, port] {
            channels->set_peer(node, host, port);
          });
      };
    }
    // Every node's portal, for SendTargets (a peer's, once it is reached).
    if (options.iscsi) {
      ports.iscsi_portal = options.iscsi->to_string();
      ports.on_iscsi_portal = [&m](uint32_t node, const std::string& host, uint16_t port) {
        if (m.iscsi_ready.load()) m.iscsi->set_peer_portal(node, host, port);
      };
      ports.on_peer_reset = [&m](uint32_t vdisk, bool all, std::function<void()> done) {
        if (!m.iscsi_ready.load()) return done();
        m.iscsi->peer_reset(vdisk, all, std::move(done));
      };
      // (Until the port is there it follows nothing: a reservation waits.)
      ports.applied_version = [&m]() -> uint64_t {
        return m.iscsi_ready.load() ? m.iscsi->applied_version() : 0;
      };
    }
    m.interconnect = spawn_interconnect_actor(
        *m.sys, options.node_id, &m.gate, options.lease_ms * 3, std::move(ports), m.tunnel);
    m.interconnect_port = std::make_unique<ActorPort>(m.interconnect);
  }
  // A partition's non-volatile memory may hold the only copy of acknowledged
  // writes: a node started with fewer cores than before must not ignore it.
  for (unsigned i = cores; i < 1024; ++i)
    if (::access((options.data_dir + "/nvram-core" + std::to_string(i)).c_str(), F_OK) == 0)
      return make_error("the cache memory of core " + std::to_string(i) + " (nvram-core" +
                            std::to_string(i) + ") may hold written data: start with --cores " +
                            std::to_string(i + 1) + " or more",
                        EINVAL);
  for (unsigned i = 0; i < cores; ++i) {
    CoreCacheSetup cache;
    cache.blocks = m.cache_blocks;
    if (options.cluster && m.cache_blocks) {
      auto nvram = open_core_nvram(options.data_dir, i, m.cache_blocks);
      if (!nvram) return nvram.error();
      // An empty area where a node that was in a cluster before had one:
      // what it held is lost. (A new node's is simply new.)
      if (nvram.value()->created() &&
          (::access((options.data_dir + "/cluster.a").c_str(), F_OK) == 0 ||
           ::access((options.data_dir + "/cluster.b").c_str(), F_OK) == 0)) {
        if (!m.cache_lost)
          spdlog::warn("the cache memory of this node is gone (nvram-core{} is new): its "
                       "partner destages their I/O group before this node owns vdisks again",
                       i);
        m.cache_lost = true;
      }
      cache.nvram = std::move(nvram.value());
      cache.mirror = make_mirror_link(m.interconnect);
      cache.self = options.node_id;
    }
    if (options.cluster) {
      cache.gate = &m.gate;
      cache.hold_ms = m.between_generations_ms();
      cache.data_channel = data_channel;
      cache.channel.self = options.node_id;
      cache.channel.cores = cores;
      cache.channel.instance = instance;
      cache.channel.key = m.cluster_key;
      if (options.enable_chaos) cache.channel.faults = m.net_faults.get();
    }
    m.cores.push_back(build_core_stack(*m.sys, *io[i], std::move(cache),
                                       m.interconnect_port.get(),
                                       options.enable_chaos ? m.mdisk_faults : nullptr, cores));
  }
  connect_core_stacks(m.cores);
  m.channels_ready = true;
  if (options.cluster) {
    // Copies for the partner go to the caches; requests from other nodes
    // to the atomic facilities above them (forwarded writes meet
    // compare-and-writes there).
    std::vector<caf::actor> cache_actors, tops;
    for (auto& core : m.cores) {
      cache_actors.push_back(core.cache_actor);
      tops.push_back(core.atomic_actor);
    }
    caf::anon_send(m.interconnect, attach_atom::value, std::move(cache_actors), std::move(tops));
  }
  std::vector<NbdCore> tops;
  for (auto& core : m.cores) tops.push_back({core.io, core.top});
  m.nbd = std::make_unique<NbdPort>(
      std::move(nbd_listener.value()), options.nbd.to_string(), tops,
      [&m](unsigned core, std::function<void()> task) {
        run_on_core(m.cores[core].backend, std::move(task));
      },
      [&] {
        nbd::SessionLimits limits;
        if (options.cluster) limits.gate = &m.gate;
        return limits;
      }(),
      options.max_connections);
  // A vdisk's cached state lives in one core's partition.
  m.nbd->place_by_volume(m.cache_blocks > 0);
  m.nbd->set_tls(tls, options.tls);
  m.nbd->set_handshake_timeout(options.handshake_timeout_ms);
  if (options.iscsi) {
    std::vector<IscsiCore> iscsi_cores;
    for (auto& core : m.cores) iscsi_cores.push_back({core.io, core.top});
    IscsiPortOptions iscsi;
    iscsi.target_name = options.iscsi_target;
    iscsi.max_connections = options.max_connections;
    iscsi.handshake_timeout_ms = options.handshake_timeout_ms;
    iscsi.portal_group = iscsi::port_group_of(options.cluster ? options.node_id : 0);
    // (It holds the interconnect's handle: the port goes before the actor
    // system, in stop().)
    if (m.interconnect)
      iscsi.tell_peers_reset = [sys = m.sys.get(), ic = m.interconnect](
                                   uint32_t vdisk, bool all, std::function<void()> told) {
        // (A short-lived actor: the port's thread cannot wait on a reply.)
        sys->spawn([ic, vdisk, all, told](caf::event_based_actor* self) {
          // (Longer than the interconnect waits for each peer's tasks.)
          self->request(ic, std::chrono::seconds(12), lun_reset_atom::value, vdisk, all)
              .then([told](bool) { told(); }, [told](caf::error&) { told(); });
        });
      };
    if (options.cluster) iscsi.gate = &m.gate;
    iscsi.transition_ms = m.between_generations_ms();
    iscsi.reserve = [&m](uint32_t vdisk, const Nexus& who, const ReservationRequest& request,
                         std::function<void(ReservationOutcome)> done) {
      m.reserve(vdisk, who, request, std::move(done));
    };
    m.iscsi = std::make_unique<IscsiPort>(
        std::move(iscsi_listener.value()), options.iscsi->to_string(), std::move(iscsi_cores),
        [&m](unsigned core, std::function<void()> task) {
          run_on_core(m.cores[core].backend, std::move(task));
        },
        std::move(iscsi));
    m.iscsi_ready = true;
  }
  m.publish();
  // The host ports open only once every core holds the model's devices and
  // views: a host's first read after a restart could reach a back end whose
  // device was not attached yet (EIO, seen once in integration.block_device
  // under load).
  m.await_published();
  m.config_actor = spawn_config_actor(*m.sys, m.config, [&m] { m.publish(); });
  {
    ChaosActorSetup chaos;
    chaos.self = options.node_id;
    chaos.data_dir = options.data_dir;
    chaos.supervised = options.supervised;
    chaos.hold_down = options.hold_down;
    chaos.net = m.net_faults;
    chaos.mdisks = m.mdisk_faults;
    chaos.mdisk_ids = [&m] {
      std::lock_guard lock(m.routes_mu);
      std::vector<uint32_t> ids;
      for (const auto& md : m.routed_config.mdisks) ids.push_back(md.id);
      return ids;
    };
    m.chaos_actor = spawn_chaos_actor(*m.sys, std::move(chaos));
  }
  if (options.cluster) {
    ClusterActorSetup setup;
    setup.self = options.node_id;
    setup.address = options.cluster->to_string();
    setup.data_dir = options.data_dir;
    setup.quorum_path = options.quorum_device;
    setup.heartbeat_ms = options.heartbeat_ms;
    setup.lease_ms = options.lease_ms;
    setup.log_keep = options.log_keep;
    setup.seed = pack_to_string(m.config->seed());
    setup.gate = &m.gate;
    setup.net_faults = m.net_faults;
    setup.key = m.cluster_key;
    setup.tunnel = m.tunnel;
    setup.view_changed = [&m](const ClusterView& view) { m.on_view(view); };
    setup.model_changed = [&m](std::string bytes) {
      caf::anon_send(m.config_actor, model_atom::value, std::move(bytes));
    };
    m.gate.open_until(0, "node is starting");
    m.cluster_actor = spawn_cluster_actor(*m.sys, std::move(setup));
    caf::anon_send(m.cluster_actor, interconnect_atom::value, m.interconnect);
    caf::anon_send(m.interconnect, cluster_atom::value, m.cluster_actor);
    caf::anon_send(m.chaos_actor, cluster_atom::value, m.cluster_actor);
    // The node's actors, for the debug shell's view of the cluster.
    std::vector<std::string> names;
    std::vector<caf::actor> actors;
    for (auto& [name, actor] : m.actor_list())
      if (actor != m.interconnect) {
        names.push_back(name);
        actors.push_back(actor);
      }
    caf::anon_send(m.interconnect, attach_atom::value, std::move(names), std::move(actors));
    auto port = m.sys->middleman().publish(m.cluster_actor, 0, "127.0.0.1", true);
    if (!port)
      return make_error("cannot listen for the cluster links on loopback: " +
                            m.sys->render(port.error()),
                        EADDRINUSE);
    m.tunnel->set_inner_port(*port);
  }
  if (options.cluster && m.cache_blocks) m.controller = m.spawn_controller();
  m.thin_controller = m.spawn_thin_controller();
  m.copy_controller = m.spawn_copy_controller();
  if (options.init_admin)
    if (auto made = m.init_admin(*node, *options.init_admin); !made) return made.error();
  // TLS on the admin API: on this process's listener when it is the public
  // one (alone; else the configuration process's is, and this one's is its
  // loopback relay), and for the admin APIs it calls (node add).
  AdminStreamAccept secure;
  if (!options.admin_certificates.empty()) {
    std::string ca = options.admin_certificates + "/ca-cert.pem";
    if (::access(ca.c_str(), R_OK) == 0) {
      auto client = admin_tls_client(ca);
      if (!client) return make_error("--admin-certificates: " + client.error().message, EINVAL);
      set_admin_transport(std::move(client.value()));
    }
    if (options.admin_fd < 0) {
      auto server = admin_tls_server(options.admin_certificates);
      if (!server) return make_error("--admin-certificates: " + server.error().message, EINVAL);
      secure = std::move(server.value());
    }
  }
  m.admin = std::make_unique<AdminServer>(
      std::move(admin_listener.value()),
      [&m, self = node.get()](const std::string& line, const std::string& peer) {
        return m.route_admin(*self, line, peer);
      },
      AdminServerLimits{}, std::move(secure));
  if (options.rest) {
    auto rest = RestServer::open(*options.rest, options.rest_certificates,
                                 [&m, self = node.get()](const std::string& line,
                                                         const std::string& peer) {
                                   return m.route_admin(*self, line, peer);
                                 });
    if (!rest) return rest.error();
    m.rest = std::move(rest.value());
  }
  m.nbd->start();
  if (m.iscsi) m.iscsi->start();
  m.admin->start();
  spdlog::info("node up: {} cores, {} buffer memory and {} request contexts per core, "
               "admin {}{}, {}", cores, format_size(options.core_io.buffer_bytes),
               options.core_io.requests, options.admin.to_string(),
               m.rest ? " and " + m.rest->describe() : std::string(),
               m.nbd->describe() + (m.iscsi ? ", " + m.iscsi->describe() : std::string()));
  return node;
}

// --init-admin: the first administrator, before any client can send a
// command (so there is no moment when loopback clients may); a restarted
// I/O process finds it made and leaves the users as they are.
Status Node::Impl::init_admin(Node& node, const std::pair<std::string, std::string>& user) {
  auto ask = [&](const nlohmann::json& request) {
    return nlohmann::json::parse(route_admin(node, request.dump(), {}, true));
  };
  auto users = ask({{"cmd", "user.list"}});
  if (!users.value("ok", false))
    return make_error("--init-admin: " + users.value("error", std::string("no user list")));
  if (!users["result"].empty()) {
    spdlog::info("--init-admin {}: administrators exist; left as they are", user.first);
    return ok_status();
  }
  auto made = ask({{"cmd", "user.create"}, {"name", user.first}, {"role", "securityadmin"},
                   {"password", user.second}});
  if (!made.value("ok", false))
    return make_error("--init-admin: " + made.value("error", std::string("no answer")), EINVAL);
  spdlog::info("--init-admin: {} is the first administrator (securityadmin)", user.first);
  return ok_status();
}

void Node::check_health() {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.cores.size(); ++i)
    m.ask_core<bool>(i, m.cores[i].backend, [] { return true; });
  if (!m.cluster_actor) return;
  // The cluster actor never blocks: one that does not answer at once is
  // dead or stuck, and the node can no longer take part in its cluster.
  caf::scoped_actor self{*m.sys};
  bool answered = false;
  self->request(m.cluster_actor, std::chrono::seconds(2), members_atom::value)
      .receive([&](std::vector<uint32_t>&) { answered = true; }, [&](caf::error&) {});
  if (!answered) throw std::runtime_error("the cluster actor does not answer");
}

nlohmann::json Node::admin(const nlohmann::json& request) {
  return nlohmann::json::parse(impl_->route_admin(*this, request.dump(), {}, true));
}

std::string Node::nbd_url() const { return impl_->nbd->describe(); }
std::string Node::admin_address() const { return impl_->options.admin.to_string(); }

// The data channels close before the actors stop: their ring operations
// complete while the reactors still run, so no connection is freed with
// an operation in flight.
void Node::Impl::close_data_channels() {
  channels_ready = false;
  channel_listener.reset();  // no new connections
  // Close, then let the rings reap it and the peers' requests still running
  // here finish (they are charged to the core's pools), for up to 5 s.
  for (int round = 0; round < 500; ++round) {
    bool busy = false;
    for (auto& core : cores) {
      if (!core.channels) continue;
      std::promise<bool> done;
      run_on_core(core.cache_actor, [&done, &core, round] {
        if (round == 0) core.channels->close_all();
        done.set_value(core.forwarder && core.forwarder->serving() > 0);
      });
      busy |= done.get_future().get();
    }
    if (round > 0 && !busy) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Still running below: left allocated rather than freed under them.
  for (auto& core : cores)
    if (core.forwarder && core.forwarder->serving() > 0) (void)core.forwarder.release();
}

void Node::stop() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  for (caf::actor* controller : {&m.controller, &m.thin_controller, &m.copy_controller})
    if (*controller) {
      caf::anon_send_exit(*controller, caf::exit_reason::user_shutdown);
      *controller = caf::actor{};
    }
  if (m.admin) m.admin->stop();
  if (m.rest) m.rest->stop();
  if (m.iscsi) m.iscsi->stop();
  if (m.nbd) m.nbd->stop();  // every host request has completed after this
  m.destage_before_stop();
  m.close_data_channels();
  if (m.sys) {
    caf::anon_send_exit(m.config_actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(m.chaos_actor, caf::exit_reason::user_shutdown);
    if (m.cluster_actor) caf::anon_send_exit(m.cluster_actor, caf::exit_reason::user_shutdown);
    if (m.interconnect) caf::anon_send_exit(m.interconnect, caf::exit_reason::user_shutdown);
    for (auto& core : m.cores)
      for (const auto& [kind, actor] : core.actors())
        caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    m.sys->await_all_actors_done();
  }
  // Nothing may hold an actor's handle once the actor system goes:
  // ~actor_system waits for every detached actor's thread, and that thread
  // for the actor's last handle. (The iSCSI port's reset callback held the
  // interconnect's, and every stop of a cluster node with an iSCSI port
  // hung there.) The host ports are stopped: they go first.
  m.iscsi_ready = false;
  m.iscsi.reset();
  m.nbd.reset();
  m.cores.clear();
  m.config_actor = caf::actor{};  // a detached actor's thread waits for its handles
  m.chaos_actor = caf::actor{};
  m.cluster_actor = caf::actor{};
  m.interconnect = caf::actor{};
  m.interconnect_port.reset();  // holds the interconnect's handle too
  auto sync_devices = [&m] {
    if (m.config)
      for (const auto& [id, dev] : m.config->devices())
        if (auto st = dev->sync(); !st) spdlog::error("{}", st.error().message);
  };
  {
    // A detached actor whose handle something still holds keeps
    // ~actor_system waiting for ever. Everything the node did is done by
    // now (no actor runs, the cache is destaged, the ports are closed): past
    // the limit it says so and ends the process, failed, rather than hang
    // until its supervisor kills it a minute later.
    std::mutex mu;
    std::condition_variable cv;
    bool gone = false;
    std::thread watchdog([&] {
      std::unique_lock lock(mu);
      if (cv.wait_for(lock, kTeardownLimit, [&] { return gone; })) return;
      spdlog::error("shutdown: the actor system did not stop within {} s (an actor's handle is "
                    "still held): the process ends without it",
                    kTeardownLimit.count());
      sync_devices();
      spdlog::default_logger()->flush();
      ::_exit(70);  // EX_SOFTWARE
    });
    m.sys.reset();  // the reactors stop; then their rings and pools go
    {
      std::lock_guard lock(mu);
      gone = true;
    }
    cv.notify_one();
    watchdog.join();
  }
  m.tunnel.reset();  // (its links' CAF ends are gone with the middleman)
  m.core_io.clear();
  sync_devices();
  spdlog::info("node stopped");
}


}  // namespace sve

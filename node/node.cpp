#include "node/node.hpp"

#include <chrono>
#include <condition_variable>
#include <future>
#include <unistd.h>
#include <thread>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

#include <caf/io/all.hpp>

#include "node/core_stack.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "cluster/net_faults.hpp"
#include "hw/device/mdisk_faults.hpp"
#include "admin/admin_schema.hpp"
#include "admin/admin_server.hpp"
#include "cluster/config_service.hpp"
#include "cluster/cluster_view.hpp"
#include "cluster/state/cluster_state.hpp"
#include "io/service_gate.hpp"
#include "io/nbd/nbd_port.hpp"
#include "io/reactor/core_io.hpp"
#include "util/size.hpp"
#include "virt/virtualizer.hpp"

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
  std::unique_ptr<AdminServer> admin;
  std::set<uint32_t> published_devices;
  bool stopped = false;
  uint32_t cache_blocks = 0;  // per core
  // In a cluster: the interconnect to other nodes, and what routes are
  // computed from (the committed model and the cluster view), which the
  // config and cluster actors each update on their own threads.
  caf::actor interconnect;
  std::unique_ptr<ActorPort> interconnect_port;
  std::mutex routes_mu;
  ClusterModel routed_config;
  ClusterView view;
  RoutePolicy policy;  // the last routes were built with

  // The cache controller: commits the I/O groups' cache state changes this
  // node is due to make (model/ownership.hpp) and the handovers of vdisks
  // moved away from it, checking every few heartbeats.
  std::thread controller;
  std::mutex controller_mu;
  std::condition_variable controller_cv;
  bool controller_stop = false;
  void run_controller();
  void control_once();
  // On the way out: destage what the caches hold (while the lease lasts),
  // so that the partner need not take it over and a group running alone
  // does not go offline with it. Waits at most 30 s.
  void destage_before_stop();

  void publish();
  void publish_routes();  // with routes_mu held
  void on_view(const ClusterView& view);
  // Runs `fn` on core `i`'s thread (through the actor `on`) and returns
  // its answer; throws if the core does not answer within 5 s.
  nlohmann::json ask_core(size_t i, const caf::actor& on, std::function<nlohmann::json()> fn);
  nlohmann::json cache_json(std::optional<uint32_t> vdisk);
  std::string show_vdisk(const std::string& line);
  // The debug shell: every actor of the node, each asked to describe
  // itself (an inspect message; actors/actor_probe.hpp).
  std::vector<std::pair<std::string, caf::actor>> actor_list();
  nlohmann::json inspect(const caf::actor& actor);
  std::string shell(const nlohmann::json& request);
  std::string call_config(const std::string& line);
  std::string call_cluster(const std::string& line);
  ClusterLink cluster_link();
  std::string route_admin(Node& node, const std::string& line);
};

namespace {

nlohmann::json account_json(const PoolAccount& a) {
  return {{"used", a.used()}, {"reserve", a.reserve()}, {"limit", a.limit()},
          {"high_water", a.stats().high_water}, {"grants", a.stats().grants},
          {"waits", a.stats().waits}};
}

// Runs on the core's own thread: its ring and pools are not shared.
nlohmann::json core_io_json(CoreIo& io) {
  const UringStats& r = io.ring().stats();
  nlohmann::json requests{{"capacity", io.requests().capacity()},
                          {"free", io.requests().free_count()},
                          {"frontend", account_json(io.frontend_requests())}};
  for (const auto& account : io.facility_accounts())
    requests[account->name()] = account_json(*account);
  return {
      {"ring", {{"submitted", r.submitted}, {"completed", r.completed}, {"errors", r.errors},
                {"in_flight", io.ring().in_flight()}, {"fixed_buffer_ops", r.fixed_buffer_ops},
                {"buffered_fallbacks", r.buffered_fallbacks},
                {"inline_completions", r.inline_completions}, {"enters", r.enters}}},
      {"buffers", {{"total_pages", io.buffers().total_pages()},
                   {"free_pages", io.buffers().free_pages()},
                   {"frontend", account_json(io.frontend_buffers())}}},
      {"requests", requests},
      {"waiting", {{"buffers", io.buffers().root().waiting()},
                   {"requests", io.requests().root().waiting()}}},
  };
}

}  // namespace

// Pushes the committed configuration to the data path. Runs on the config
// actor's thread (or before it exists); the data path only ever receives
// immutable snapshots and device handles by message.
void Node::Impl::publish() {
  const DeviceTable& devices = config->devices();
  auto map = build_virt_map(config->config());
  for (auto& core : cores) {
    for (const auto& [id, dev] : devices)
      caf::anon_send(core.backend, attach_atom::value, id, BlockDevicePtr(dev));
    for (uint32_t id : published_devices)
      if (!devices.count(id)) caf::anon_send(core.backend, detach_atom::value, id);
    for (const caf::actor& facility : {core.virt, core.cache_actor})
      caf::anon_send(facility, view_atom::value, FacilityView{map, nullptr});
  }
  published_devices.clear();
  for (const auto& [id, dev] : devices) published_devices.insert(id);
  {
    std::lock_guard lock(routes_mu);
    routed_config = config->config();
    publish_routes();
  }
  if (nbd) nbd->set_exports(map);
}

// Who owns each vdisk, to every core and the interconnect.
void Node::Impl::publish_routes() {
  RoutePolicy policy;
  policy.self = options.cluster ? options.node_id : 0;
  policy.serving = !options.cluster || view.serving;
  policy.generation = view.generation;
  policy.members = view.members;
  policy.cache = cache_blocks > 0;
  this->policy = policy;
  RoutesPtr routes = build_routes(routed_config, policy);
  for (auto& core : cores) {
    for (const caf::actor& facility : {core.cache_actor, core.forward_actor})
      caf::anon_send(facility, view_atom::value, FacilityView{nullptr, routes});
  }
  if (interconnect) caf::anon_send(interconnect, routes_atom::value, routes);
}

// On the cluster actor's thread, before the gate opens on this view.
void Node::Impl::on_view(const ClusterView& next) {
  std::lock_guard lock(routes_mu);
  view = next;
  if (interconnect)
    caf::anon_send(interconnect, peers_atom::value, view.node_ids, view.addresses);
  publish_routes();
}

namespace {

// The non-volatile memory of core `index`'s cache partition: room for its
// own dirty blocks and the partner's copies, with some to spare.
Result<std::unique_ptr<Nvram>> open_core_nvram(const std::string& data_dir, unsigned index,
                                               uint32_t blocks) {
  return Nvram::open(data_dir + "/nvram-core" + std::to_string(index), 2 * blocks + 64);
}

// An admin request (a JSON line) to `actor`, which answers every one.
std::string ask(caf::actor_system& sys, const caf::actor& actor, const std::string& line,
                const char* who) {
  caf::scoped_actor self{sys};
  std::string reply;
  self->request(actor, caf::infinite, admin_atom::value, line)
      .receive([&](std::string& r) { reply = std::move(r); },
               [&](caf::error& e) {
                 reply = nlohmann::json{{"ok", false},
                                        {"error", std::string(who) + ": " + sys.render(e)}}
                             .dump();
               });
  return reply;
}

}  // namespace

std::string Node::Impl::call_config(const std::string& line) {
  return ask(*sys, config_actor, line, "config actor");
}

std::string Node::Impl::call_cluster(const std::string& line) {
  if (!cluster_actor)
    return nlohmann::json{{"ok", false},
                          {"error", "this node was started without --cluster: it stands alone"}}
        .dump();
  return ask(*sys, cluster_actor, line, "cluster actor");
}

// How the configuration actor commits in a cluster: through the cluster
// actor, waiting for the event to commit (the cluster actor answers every
// request within its own deadline).
ClusterLink Node::Impl::cluster_link() {
  ClusterLink link;
  link.current = [this]() -> std::optional<ClusterModel> {
    caf::scoped_actor self{*sys};
    std::optional<ClusterModel> out;
    self->request(cluster_actor, std::chrono::seconds(30), model_atom::value)
        .receive([&](std::string& bytes) { out = unpack_from_string<ClusterModel>(bytes); },
                 [&](caf::error&) {});
    return out;
  };
  link.nodes = [this]() -> std::vector<uint32_t> {
    caf::scoped_actor self{*sys};
    std::vector<uint32_t> out;
    self->request(cluster_actor, std::chrono::seconds(30), members_atom::value)
        .receive([&](std::vector<uint32_t>& ids) { out = std::move(ids); },
                 [&](caf::error&) {});
    return out;
  };
  link.commit = [this, current = link.current](uint64_t base,
                                               const ClusterModel& next) -> Result<ClusterModel> {
    caf::scoped_actor self{*sys};
    std::string reply;
    self->request(cluster_actor, std::chrono::seconds(30), commit_atom::value, base,
                  pack_to_string(next))
        .receive([&](std::string& r) { reply = std::move(r); },
                 [&](caf::error& e) {
                   reply = nlohmann::json{{"ok", false}, {"error", sys->render(e)}}.dump();
                 });
    auto answer = nlohmann::json::parse(reply, nullptr, false);
    if (answer.is_discarded() || !answer.is_object())
      return make_error("cluster actor sent no answer", EIO);
    if (!answer.value("ok", false)) {
      if (answer.value("conflict", false)) return make_error("conflict", ESTALE);
      return make_error(answer.value("error", std::string("cluster refused")), EIO);
    }
    auto committed = current();
    if (!committed) return make_error("cluster actor did not return the model", EIO);
    return *committed;
  };
  return link;
}

// Data-path statistics are the node's own; cluster commands go to the
// cluster actor; everything else is configuration.
std::string Node::Impl::route_admin(Node& node, const std::string& line) {
  // Checked whole before anything reads it (the configuration process did
  // too; this process also runs alone).
  auto parsed = parse_admin_request(line);
  if (!parsed) return admin_error(parsed.error().message);
  const nlohmann::json& request = *parsed;
  std::string cmd = admin_command(request);
  if (cmd.rfind("cluster.", 0) == 0 || cmd == "node.add" || cmd == "node.remove" ||
      cmd == "node.list")
    return call_cluster(line);
  if (cmd == "node.stats" || cmd == "node.show") {
    try {
      auto result = cmd == "node.stats" ? node.io_stats() : cache_json(std::nullopt);
      return nlohmann::json{{"ok", true}, {"result", result}}.dump();
    } catch (const std::exception& e) {
      return nlohmann::json{{"ok", false}, {"error", e.what()}}.dump();
    }
  }
  if (cmd == "vdisk.show") return show_vdisk(line);
  if (cmd == "daemon.status")  // run alone (--single-process): no configuration process
    return nlohmann::json{{"ok", true},
                          {"result",
                           {{"supervised", false},
                            {"nbd", options.nbd.to_string()},
                            {"io_pid", ::getpid()},
                            {"io_serving", true},
                            {"restarts", 0}}}}
        .dump();
  if (cmd.rfind("chaos.", 0) == 0) {
    if (!options.enable_chaos)
      return admin_error("the chaos monkey is off on this node: start sved with --enable-chaos "
                         "(test clusters only)");
    return ask(*sys, chaos_actor, line, "chaos monkey");
  }
  if (cmd.rfind("shell.", 0) == 0) return shell(request);
  return call_config(line);
}

Node::Node() : impl_(new Impl()) {}

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
  auto admin_listener = listen(options.admin_fd, options.admin);
  if (!admin_listener) return admin_listener.error();

  auto config = options.cluster ? ConfigService::open_clustered(options.data_dir, m.cluster_link())
                                : ConfigService::open(options.data_dir);
  if (!config) return config.error();
  m.config = std::move(config.value());

  // Each core's ring, buffers and request pool exist before its reactor.
  unsigned cores = std::max(1u, options.cores);
  std::vector<CoreIo*> io;
  for (unsigned i = 0; i < cores; ++i) {
    auto core = CoreIo::create(i, options.core_io, {{kVirtFacility, kVirtRequestReserve}});
    if (!core) return core.error();
    io.push_back(core.value().get());
    core.value()->ring().set_faults(m.mdisk_faults);
    m.core_io.push_back(std::move(core.value()));
  }
  install_reactor_scheduler(m.cfg, io, options.pin);
  if (options.cluster) {
    m.cfg.load<caf::io::middleman>();
    // Sent between nodes and not among CAF's built-in types: the block
    // numbers and versions of the cache's copies.
    m.cfg.add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
  }
  m.cfg.set("logger.verbosity", caf::atom("quiet"));
  m.sys = std::make_unique<caf::actor_system>(m.cfg);
  bind_reactor_workers(*m.sys);
  m.cache_blocks = static_cast<uint32_t>(options.cache_bytes / 4096 / cores);
  // In a cluster, requests for vdisks other nodes own, and the cache's
  // copies for the partner, leave through the interconnect.
  if (options.cluster) {
    m.interconnect = spawn_interconnect_actor(*m.sys, options.node_id, &m.gate,
                                              options.lease_ms * 3);
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
      cache.nvram = std::move(nvram.value());
      cache.mirror = make_mirror_link(m.interconnect);
      cache.self = options.node_id;
      cache.gate = &m.gate;
    }
    m.cores.push_back(build_core_stack(*m.sys, *io[i], std::move(cache),
                                       m.interconnect_port.get()));
  }
  if (options.cluster) {
    std::vector<caf::actor> cache_actors;
    for (auto& core : m.cores) cache_actors.push_back(core.cache_actor);
    caf::anon_send(m.interconnect, attach_atom::value, std::move(cache_actors));
  }
  std::vector<NbdCore> tops;
  for (auto& core : m.cores) tops.push_back({core.io, core.top.get()});
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
  m.publish();
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
    setup.view_changed = [&m](const ClusterView& view) { m.on_view(view); };
    setup.model_changed = [&m](std::string bytes) {
      caf::anon_send(m.config_actor, model_atom::value, std::move(bytes));
    };
    m.gate.open_until(0, "node is starting");
    m.cluster_actor = spawn_cluster_actor(*m.sys, std::move(setup));
    caf::anon_send(m.cluster_actor, interconnect_atom::value, m.interconnect);
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
    auto port = m.sys->middleman().publish(m.cluster_actor, options.cluster->port,
                                           options.cluster->host.c_str(), true);
    if (!port)
      return make_error("cannot listen on cluster address " + options.cluster->to_string() +
                            ": " + m.sys->render(port.error()),
                        EADDRINUSE);
  }
  if (options.cluster && m.cache_blocks)
    m.controller = std::thread([&m] { m.run_controller(); });
  m.admin = std::make_unique<AdminServer>(
      std::move(admin_listener.value()),
      [&m, self = node.get()](const std::string& line) { return m.route_admin(*self, line); });
  m.nbd->start();
  m.admin->start();
  spdlog::info("node up: {} cores, {} buffer memory and {} request contexts per core, "
               "admin {}, {}", cores, format_size(options.core_io.buffer_bytes),
               options.core_io.requests, options.admin.to_string(), m.nbd->describe());
  return node;
}

nlohmann::json Node::io_stats() {
  Impl& m = *impl_;
  nlohmann::json cores = nlohmann::json::array();
  auto sched = reactor_scheduler_stats();
  for (size_t i = 0; i < m.cores.size(); ++i) {
    CoreIo* io = m.cores[i].io;
    nlohmann::json core = m.ask_core(i, m.cores[i].backend, [io] { return core_io_json(*io); });
    core["core"] = i;
    if (i < sched.size())
      core["scheduler"] = {{"local", sched[i].local}, {"cross_core", sched[i].cross_core},
                           {"external", sched[i].external}, {"sleeps", sched[i].sleeps}};
    cores.push_back(std::move(core));
  }
  return {{"cores", cores}, {"nbd_connections", m.nbd ? m.nbd->connections() : 0}};
}

void Node::check_health() {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.cores.size(); ++i)
    m.ask_core(i, m.cores[i].backend, [] { return nlohmann::json(true); });
  if (!m.cluster_actor) return;
  // The cluster actor never blocks: one that does not answer at once is
  // dead or stuck, and the node can no longer take part in its cluster.
  caf::scoped_actor self{*m.sys};
  bool answered = false;
  self->request(m.cluster_actor, std::chrono::seconds(2), members_atom::value)
      .receive([&](std::vector<uint32_t>&) { answered = true; }, [&](caf::error&) {});
  if (!answered) throw std::runtime_error("the cluster actor does not answer");
}

nlohmann::json Node::Impl::ask_core(size_t i, const caf::actor& on,
                                    std::function<nlohmann::json()> fn) {
  // Shared, in case the answer comes too late.
  auto done = std::make_shared<std::promise<nlohmann::json>>();
  auto answer = done->get_future();
  run_on_core(on, [done, fn = std::move(fn)] { done->set_value(fn()); });
  if (answer.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw std::runtime_error("core " + std::to_string(i) + " did not answer within 5 s");
  return answer.get();
}

// The cache of this node (every partition summed), or of one vdisk (its
// partition's share of it).
nlohmann::json Node::Impl::cache_json(std::optional<uint32_t> vdisk) {
  CacheCounts total;
  CacheVdiskStats v;
  nlohmann::json sums = nlohmann::json::object();
  uint64_t vdisk_dirty = 0;
  uint64_t capacity = 0;
  std::string mode, why;
  for (size_t i = 0; i < cores.size(); ++i) {
    CacheFacility* cache = cores[i].cache.get();
    auto part = ask_core(i, cores[i].cache_actor, [cache, vdisk] {
      CacheCounts c = cache->counts();
      const CachePartitionStats& s = cache->stats();
      nlohmann::json j = {{"capacity", cache->capacity_bytes()}, {"clean", c.clean},
                          {"dirty", c.dirty}, {"destaging", c.destaging},
                          {"destaged", s.destaged_bytes}, {"rate", cache->destage_rate()},
                          {"copies", s.copies_held}, {"promoted", s.promoted},
                          {"discarded", s.discarded}, {"waits", s.waits},
                          {"mirrored", s.mirrored}, {"batches", s.mirror_batches},
                          {"retries", s.mirror_retries}};
      if (vdisk) {
        j["mode"] = to_string(cache->mode(*vdisk));
        j["why"] = cache->mode_reason(*vdisk);
        j["vdisk_dirty"] = cache->dirty_blocks(*vdisk);
      }
      CacheVdiskStats all = cache->totals();
      const CacheVdiskStats* io = vdisk ? cache->vdisk_stats(*vdisk) : &all;
      if (io)
        j["vdisk"] = {{"reads", io->reads}, {"read_hits", io->read_hits},
                      {"writes", io->writes}, {"bytes_read", io->bytes_read},
                      {"bytes_hit", io->bytes_hit}, {"bytes_written", io->bytes_written},
                      {"bytes_destaged", io->bytes_destaged},
                      {"destage_rate", io->destage_rate}};
      return j;
    });
    capacity += part["capacity"].get<uint64_t>();
    total.clean += part["clean"].get<uint32_t>();
    total.dirty += part["dirty"].get<uint32_t>();
    total.destaging += part["destaging"].get<uint32_t>();
    for (const char* key : {"destaged", "rate", "copies", "promoted", "discarded", "waits",
                            "mirrored", "batches", "retries"})
      sums[key] = sums.value(key, uint64_t{0}) + part[key].get<uint64_t>();
    if (part.contains("vdisk_dirty"))
      vdisk_dirty += part["vdisk_dirty"].get<uint64_t>();
    if (vdisk && i == *vdisk % cores.size()) {  // the partition that owns it says
      mode = part["mode"];
      why = part["why"];
    }
    if (part.contains("vdisk")) {
      const auto& s = part["vdisk"];
      v.reads += s["reads"].get<uint64_t>();
      v.read_hits += s["read_hits"].get<uint64_t>();
      v.writes += s["writes"].get<uint64_t>();
      v.bytes_read += s["bytes_read"].get<uint64_t>();
      v.bytes_hit += s["bytes_hit"].get<uint64_t>();
      v.bytes_written += s["bytes_written"].get<uint64_t>();
      v.bytes_destaged += s["bytes_destaged"].get<uint64_t>();
      v.destage_rate += s["destage_rate"].get<uint64_t>();
    }
  }
  if (!vdisk) {
    std::lock_guard lock(routes_mu);
    NodeCacheMode m = node_cache_mode(routed_config, policy);
    mode = to_string(m.mode);
    why = m.why;
  }
  uint64_t reads = v.reads, hits = v.read_hits;
  nlohmann::json out = {
      {"mode", mode},
      {"why", why},
      {"size_bytes", capacity},
      {"cached_bytes", uint64_t{total.clean + total.dirty + total.destaging} * 4096},
      {"dirty_bytes", uint64_t{total.dirty + total.destaging} * 4096},
      {"destaged_bytes", sums["destaged"]},
      {"destage_rate", sums["rate"]},  // bytes per second, over the last second
      {"partner_copies_bytes", sums["copies"].get<uint64_t>() * 4096},
      {"blocks_mirrored", sums["mirrored"]},
      {"mirror_messages", sums["batches"]},
      {"mirror_retries", sums["retries"]},
      {"copies_taken_over", sums["promoted"]},
      {"copies_discarded", sums["discarded"]},
      {"waits", sums["waits"]},
  };
  out["reads"] = reads;
  out["read_hits"] = hits;
  out["hit_ratio"] = reads ? static_cast<double>(hits) / static_cast<double>(reads) : 0.0;
  out["writes"] = v.writes;
  out["bytes_read"] = v.bytes_read;
  out["bytes_hit"] = v.bytes_hit;
  out["bytes_written"] = v.bytes_written;
  if (vdisk) {  // this vdisk's share
    out["dirty_bytes"] = vdisk_dirty * 4096;
    out["destaged_bytes"] = v.bytes_destaged;
    out["destage_rate"] = v.destage_rate;
  }
  return out;
}

std::vector<std::pair<std::string, caf::actor>> Node::Impl::actor_list() {
  std::vector<std::pair<std::string, caf::actor>> out;
  for (size_t i = 0; i < cores.size(); ++i) {
    std::string n = "/" + std::to_string(i);
    out.emplace_back("forward" + n, cores[i].forward_actor);
    out.emplace_back("cache" + n, cores[i].cache_actor);
    out.emplace_back("virt" + n, cores[i].virt);
    out.emplace_back("backend" + n, cores[i].backend);
  }
  out.emplace_back("config", config_actor);
  out.emplace_back("chaos", chaos_actor);
  if (cluster_actor) {
    out.emplace_back("cluster", cluster_actor);
    caf::scoped_actor self{*sys};
    self->request(cluster_actor, std::chrono::seconds(2), peer_atom::value)
        .receive(
            [&](std::vector<uint32_t>& ids, std::vector<caf::actor>& links) {
              for (size_t i = 0; i < ids.size() && i < links.size(); ++i)
                out.emplace_back("heartbeat/" + std::to_string(ids[i]), links[i]);
            },
            [&](caf::error&) {});
  }
  if (interconnect) out.emplace_back("interconnect", interconnect);
  return out;
}

nlohmann::json Node::Impl::inspect(const caf::actor& actor) {
  caf::scoped_actor self{*sys};
  nlohmann::json out;
  self->request(actor, std::chrono::seconds(2), inspect_atom::value)
      .receive([&](std::string& answer) { out = nlohmann::json::parse(answer, nullptr, false); },
               [&](caf::error& e) { out = {{"error", sys->render(e)}}; });
  return out;
}

std::string Node::Impl::shell(const nlohmann::json& request) {
  auto reply = [](nlohmann::json result) {
    return nlohmann::json{{"ok", true}, {"result", std::move(result)}}.dump();
  };
  std::string cmd = request.value("cmd", "");
  if (cmd == "shell.actors") {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& [name, actor] : actor_list()) {
      nlohmann::json row = inspect(actor);
      if (row.is_object()) row.erase("state");
      if (row.is_object() && !row.contains("name")) row["name"] = name;
      rows.push_back(std::move(row));
    }
    return reply(std::move(rows));
  }
  if (cmd == "shell.cluster") {
    if (!interconnect)
      return nlohmann::json{{"ok", false},
                            {"error", "this node stands alone: 'actors' shows its actors"}}
          .dump();
    caf::scoped_actor self{*sys};
    nlohmann::json nodes;
    self->request(interconnect, std::chrono::seconds(8), shell_atom::value, all_atom::value)
        .receive([&](std::string& answer) { nodes = nlohmann::json::parse(answer, nullptr, false); },
                 [&](caf::error& e) { nodes = {{"error", sys->render(e)}}; });
    return reply(std::move(nodes));
  }
  if (cmd == "shell.trace") {
    std::string wanted = request.value("name", "");
    uint32_t n = request.value("count", uint32_t{10});
    if (n == 0 || n > 10000) return nlohmann::json{{"ok", false}, {"error", "trace 1 to 10000 messages"}}.dump();
    for (const auto& [name, actor] : actor_list())
      if (name == wanted) {
        caf::anon_send(actor, trace_atom::value, n);
        return reply({{"name", name}, {"count", n}});
      }
    return nlohmann::json{{"ok", false},
                          {"error", "no actor '" + wanted + "': 'actors' lists them"}}
        .dump();
  }
  if (cmd == "shell.inspect") {
    std::string wanted = request.value("name", "");
    for (const auto& [name, actor] : actor_list())
      if (name == wanted) return reply(inspect(actor));
    return nlohmann::json{{"ok", false},
                          {"error", "no actor '" + wanted + "': 'actors' lists them"}}
        .dump();
  }
  return nlohmann::json{{"ok", false}, {"error", "unknown shell command '" + cmd + "'"}}.dump();
}

// vdisk show: the configuration's answer, with the vdisk's cache figures.
std::string Node::Impl::show_vdisk(const std::string& line) {
  std::string reply = call_config(line);
  auto answer = nlohmann::json::parse(reply, nullptr, false);
  if (answer.is_discarded() || !answer.value("ok", false)) return reply;
  try {
    auto& result = answer["result"];
    result["cache"] = cache_json(result.value("id", uint32_t{0}));
  } catch (const std::exception& e) {
    answer["result"]["cache"] = {{"error", e.what()}};
  }
  return answer.dump();
}

void Node::Impl::destage_before_stop() {
  if (!sys || cache_blocks == 0) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t dirty = 0;
  try {
    for (;;) {
      dirty = 0;
      for (size_t i = 0; i < cores.size(); ++i) {
        CacheFacility* cache = cores[i].cache.get();
        dirty += ask_core(i, cores[i].cache_actor, [cache] {
                   cache->flush_all();
                   return nlohmann::json(cache->dirty_total());
                 }).template get<uint64_t>();
      }
      if (dirty == 0 || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception& e) {
    spdlog::warn("shutdown: {}", e.what());
  }
  if (dirty)
    spdlog::warn("shutdown: {} dirty blocks not destaged; their copies stay in NVRAM and with "
                 "the partner", dirty);
  else
    spdlog::info("shutdown: the cache is destaged");
}

void Node::Impl::run_controller() {
  auto period = std::chrono::milliseconds(std::max<uint64_t>(20, options.heartbeat_ms * 2));
  std::unique_lock lock(controller_mu);
  while (!controller_cv.wait_for(lock, period, [this] { return controller_stop; })) {
    lock.unlock();
    try {
      control_once();
    } catch (const std::exception& e) {
      spdlog::warn("cache controller: {}", e.what());
    }
    lock.lock();
  }
}

void Node::Impl::control_once() {
  RoutePolicy p;
  ClusterModel c;
  {
    std::lock_guard lock(routes_mu);
    p = policy;
    c = routed_config;
  }
  if (!p.serving) return;
  auto dirty = [this](auto count) {
    uint64_t n = 0;
    for (size_t i = 0; i < cores.size(); ++i) {
      CacheFacility* cache = cores[i].cache.get();
      n += ask_core(i, cores[i].cache_actor,
                    [cache, count] { return nlohmann::json(count(*cache)); })
               .template get<uint64_t>();
    }
    return n;
  };
  std::vector<uint32_t> clean;
  for (const auto& g : c.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), p.self) &&
        dirty([id = g.id](const CacheFacility& f) { return f.dirty_blocks_of_group(id); }) == 0)
      clean.push_back(g.id);
  // Committed straight through the cluster actor, on top of the model this
  // node routes by: the config actor (and the admin commands it serves)
  // never waits for these. A model that moved on meanwhile means the next
  // round looks again.
  auto commit = [this, &c](const ClusterModel& next, const std::string& what) {
    caf::scoped_actor self{*sys};
    std::string reply;
    self->request(cluster_actor, std::chrono::seconds(20), commit_atom::value, c.version,
                  pack_to_string(next))
        .receive([&](std::string& r) { reply = std::move(r); },
                 [&](caf::error& e) { reply = sys->render(e); });
    auto answer = nlohmann::json::parse(reply, nullptr, false);
    if (!answer.is_discarded() && answer.value("ok", false)) {
      spdlog::info("cache controller: committed {}", what);
    } else if (answer.is_discarded() || !answer.value("conflict", false)) {
      spdlog::warn("cache controller: {} not committed: {}", what,
                   answer.is_discarded() ? reply : answer.value("error", std::string()));
    }
  };
  for (const GroupTransition& t : due_transitions(c, p, clean)) {
    ClusterModel next = c;
    if (apply_transition(next, t))
      return commit(next, "I/O group " + std::to_string(t.group) +
                              (t.solo ? " run by node " + std::to_string(t.solo) + " alone"
                                      : " writing back on both nodes"));
  }
  // The handovers this node is to finish: its own (it was the owner), or
  // one it does for an old owner that is out (moved from its group). Its
  // cache may not have taken the copies over yet: any copy still held
  // waits, as does any dirty block.
  auto table = build_routes(c, p);
  for (const auto& v : c.vdisks) {
    const VdiskRoute* r = table->find(v.id);
    if (!v.handover_from || !r || r->handover_by != p.self) continue;
    if (dirty([id = v.id](const CacheFacility& f) {
          return f.dirty_blocks(id) + f.held_blocks(id);
        }) != 0)
      continue;
    ClusterModel next = c;
    if (finish_handover(next, v.id, v.handover_from))
      return commit(next, "the handover of vdisk " + v.name +
                              (v.handover_from == p.self
                                   ? std::string()
                                   : " for node " + std::to_string(v.handover_from)));
  }
}

nlohmann::json Node::admin(const nlohmann::json& request) {
  return nlohmann::json::parse(impl_->route_admin(*this, request.dump()));
}

std::string Node::nbd_url() const { return impl_->nbd->describe(); }
std::string Node::admin_address() const { return impl_->options.admin.to_string(); }

void Node::stop() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  if (m.controller.joinable()) {
    {
      std::lock_guard lock(m.controller_mu);
      m.controller_stop = true;
    }
    m.controller_cv.notify_all();
    m.controller.join();
  }
  if (m.admin) m.admin->stop();
  if (m.nbd) m.nbd->stop();  // every host request has completed after this
  m.destage_before_stop();
  if (m.sys) {
    caf::anon_send_exit(m.config_actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(m.chaos_actor, caf::exit_reason::user_shutdown);
    if (m.cluster_actor) caf::anon_send_exit(m.cluster_actor, caf::exit_reason::user_shutdown);
    if (m.interconnect) caf::anon_send_exit(m.interconnect, caf::exit_reason::user_shutdown);
    for (auto& core : m.cores) {
      caf::anon_send_exit(core.forward_actor, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(core.cache_actor, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(core.virt, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(core.backend, caf::exit_reason::user_shutdown);
    }
    m.sys->await_all_actors_done();
  }
  m.cores.clear();
  m.config_actor = caf::actor{};  // a detached actor's thread waits for its handles
  m.chaos_actor = caf::actor{};
  m.cluster_actor = caf::actor{};
  m.interconnect = caf::actor{};
  m.interconnect_port.reset();  // holds the interconnect's handle too
  m.sys.reset();  // the reactors stop; then their rings and pools go
  m.core_io.clear();
  if (m.config)
    for (const auto& [id, dev] : m.config->devices())
      if (auto st = dev->sync(); !st) spdlog::error("{}", st.error().message);
  spdlog::info("node stopped");
}

}  // namespace sve

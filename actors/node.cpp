#include "actors/node.hpp"

#include <set>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/actor_port.hpp"
#include "actors/spawn.hpp"
#include "admin/admin_server.hpp"
#include "cluster/config_service.hpp"
#include "io/nbd/nbd_port.hpp"
#include "io/uring/uring_engine.hpp"

namespace sve {

// The facility stack of one core, top to bottom. This is the one place that
// decides the order: front end -> virtualization -> back end. Later
// facilities (cache, point-in-time copy, remote copy) are inserted here.
struct CoreStack {
  std::shared_ptr<UringEngine> engine;
  caf::actor backend;
  caf::actor virt;
  std::shared_ptr<IoServer> top;  // where the front end submits
};

struct Node::Impl {
  NodeOptions options;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<ConfigService> config;
  caf::actor config_actor;
  std::vector<CoreStack> cores;
  std::unique_ptr<NbdPort> nbd;
  std::unique_ptr<AdminServer> admin;
  std::set<uint32_t> published_devices;
  bool stopped = false;

  void publish();
  std::string call_config(const std::string& line);
};

namespace {

Result<CoreStack> build_core_stack(caf::actor_system& sys) {
  CoreStack core;
  auto engine = UringEngine::create();
  if (!engine) return engine.error();
  core.engine = std::move(engine.value());
  core.backend = spawn_backend_actor(sys, core.engine);
  auto backend_port = std::make_shared<ActorPort>(core.backend);
  core.virt = spawn_virt_actor(sys, backend_port);
  core.top = std::make_shared<ActorPort>(core.virt);
  return core;
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
    caf::anon_send(core.virt, virt_map_atom::value, VirtMapPtr(map));
  }
  published_devices.clear();
  for (const auto& [id, dev] : devices) published_devices.insert(id);
  if (nbd) nbd->set_exports(map);
}

std::string Node::Impl::call_config(const std::string& line) {
  caf::scoped_actor self{*sys};
  std::string reply;
  self->request(config_actor, caf::infinite, admin_atom::value, line)
      .receive([&](std::string& r) { reply = std::move(r); },
               [&](caf::error& e) {
                 reply = nlohmann::json{{"ok", false},
                                        {"error", "config actor: " + sys->render(e)}}
                             .dump();
               });
  return reply;
}

Node::Node() : impl_(new Impl()) {}

Node::~Node() { stop(); }

Result<std::unique_ptr<Node>> Node::start(const NodeOptions& options) {
  std::unique_ptr<Node> node(new Node());
  Impl& m = *node->impl_;
  m.options = options;

  auto nbd_listener = listen_tcp(options.nbd);
  if (!nbd_listener) return nbd_listener.error();
  auto admin_listener = listen_tcp(options.admin);
  if (!admin_listener) return admin_listener.error();

  auto config = ConfigService::open(options.data_dir);
  if (!config) return config.error();
  m.config = std::move(config.value());

  unsigned cores = std::max(1u, options.cores);
  m.cfg.set("scheduler.max-threads", static_cast<size_t>(cores));
  m.cfg.set("logger.verbosity", caf::atom("quiet"));
  m.sys = std::make_unique<caf::actor_system>(m.cfg);
  for (unsigned i = 0; i < cores; ++i) {
    auto core = build_core_stack(*m.sys);
    if (!core) return core.error();
    m.cores.push_back(std::move(core.value()));
  }
  std::vector<std::shared_ptr<IoServer>> tops;
  for (auto& core : m.cores) tops.push_back(core.top);
  m.nbd = std::make_unique<NbdPort>(*m.sys, std::move(nbd_listener.value()),
                                    options.nbd.to_string(), tops);
  m.publish();
  m.config_actor = spawn_config_actor(*m.sys, m.config, [&m] { m.publish(); });
  m.admin = std::make_unique<AdminServer>(
      std::move(admin_listener.value()),
      [&m](const std::string& line) { return m.call_config(line); });
  m.nbd->start();
  m.admin->start();
  spdlog::info("node up: {} cores, admin {}, {}", cores, options.admin.to_string(),
               m.nbd->describe());
  return node;
}

nlohmann::json Node::admin(const nlohmann::json& request) {
  return nlohmann::json::parse(impl_->call_config(request.dump()));
}

std::string Node::nbd_url() const { return impl_->nbd->describe(); }
std::string Node::admin_address() const { return impl_->options.admin.to_string(); }

void Node::stop() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  if (m.admin) m.admin->stop();
  if (m.nbd) m.nbd->stop();  // every host request has completed after this
  if (m.sys) {
    caf::anon_send_exit(m.config_actor, caf::exit_reason::user_shutdown);
    for (auto& core : m.cores) {
      caf::anon_send_exit(core.virt, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(core.backend, caf::exit_reason::user_shutdown);
    }
    m.sys->await_all_actors_done();
  }
  m.cores.clear();  // engines stop their reapers here
  if (m.config)
    for (const auto& [id, dev] : m.config->devices())
      if (auto st = dev->sync(); !st) spdlog::error("{}", st.error().message);
  spdlog::info("node stopped");
}

}  // namespace sve

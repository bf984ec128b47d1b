#include "io/iscsi/port/iscsi_port.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "hw/port/tcp.hpp"
#include "io/iscsi/iscsi_access.hpp"
#include "io/iscsi/port/iscsi_handshake.hpp"
#include "io/iscsi/iscsi_units.hpp"
#include "model/host_access.hpp"
#include "model/virt_map.hpp"

namespace sve {
namespace {

uint16_t local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

// Whether a LUN of a session now leads to another vdisk: that ends the
// connection (the host logs in again and finds the new set; it must not
// write one vdisk's blocks to another). A LUN gone (unmapped) or added,
// or a vdisk changed in size or flags, is taken as it is, and the host is
// told by unit attention (REPORTED LUNS DATA HAS CHANGED, CAPACITY DATA
// HAS CHANGED: IscsiConnection::set_units).
bool remapped(const std::vector<iscsi::Unit>& before, const std::vector<iscsi::Unit>& now) {
  for (const iscsi::Unit& b : before)
    for (const iscsi::Unit& n : now)
      if (n.lun == b.lun && n.lu.volume != b.lu.volume) return true;
  return false;
}

}  // namespace

struct IscsiPort::Impl {
  UniqueFd listener;
  std::string address;
  uint16_t port = 3260;
  std::vector<IscsiCore> cores;
  iscsi::CorePost post;
  IscsiPortOptions options;
  bool listener_loopback = false;
  std::vector<std::unique_ptr<iscsi::TaskPool>> tasks;  // one per core, used only there

  std::thread acceptor;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const VirtMap> exports;
  std::shared_ptr<const HostPaths> paths;  // (none: a standalone node's)
  std::map<uint32_t, iscsi::Portal> peer_portals;  // by node
  bool stopping = false;
  std::set<int> fds;  // every connection's socket, logging in or serving
  size_t handshaking = 0;
  uint64_t refused = 0;
  uint16_t next_tsih = 1;
  // The TSIHs of logins still in their handshake: a leading login's answer
  // (with its TSIH) goes out before its session is registered here, and a
  // connection joining it meanwhile waits for that (may_join_once_led).
  std::set<uint16_t> leading;
  size_t next_core = 0;
  struct Admitted {
    iscsi::IscsiClient client;
    std::vector<iscsi::Unit> units;
    unsigned core = 0;
    bool revoked = false;
    uint16_t tsih = 0;  // its session's
    uint16_t cid = 0;   // its connection ID there
  };
  // A normal session's, by TSIH, while it has a connection: whose it is
  // (the initiator port), the core all its connections run on, what its
  // first connection negotiated, and what they share there.
  struct Session {
    std::string initiator_port;
    unsigned core = 0;
    iscsi::SessionParams params;
    std::shared_ptr<iscsi::SessionShared> shared;
    size_t connections = 0;  // admitted (serving, or on their way to the core)
    // Connections whose join was answered and that are not yet on the
    // session's core, by socket (two by one CID may be on their way, one
    // replacing the other): a Logout naming one meanwhile must find it.
    struct Arriving {
      uint16_t cid = 0;
      bool counted = false;     // in `connections` (its login is over)
      bool logged_out = false;  // named by a Logout or replaced: closes on arrival
    };
    std::map<int, Arriving> arriving;
  };
  std::map<uint16_t, Session> sessions;
  std::map<iscsi::IscsiConnection*, Admitted> serving;  // each owned by its core
  // Each core's: the version of the exports its connections follow.
  std::unique_ptr<std::atomic<uint64_t>[]> core_versions;
  // Each core's, touched only on it: the latest version its connections
  // were given, and how many of them still wait for tasks a PREEMPT AND
  // ABORT ended (the core follows that version only once they are back).
  std::vector<uint64_t> core_given;
  std::vector<uint32_t> core_draining;

  void accept_loop();
  void handshake(int fd, size_t core);
  iscsi::JoinAnswer may_join(const std::string& initiator_port, uint16_t tsih, uint16_t cid,
                             int fd) const;
  iscsi::JoinAnswer may_join_once_led(const std::string& initiator_port, uint16_t tsih,
                                      uint16_t own, uint16_t cid, int fd);
  void forget_arriving(uint16_t tsih, int fd);
  void handshake_ended(uint16_t tsih);
  uint16_t new_tsih();
  void reinstate(const std::string& initiator_port);
  void serve_on_core(int fd, iscsi::ConnectionSetup setup, unsigned core, Admitted admitted);
  // Under mu: follows `exports` and `paths` in every serving connection.
  void follow_exports();
  void publish_version(unsigned core);  // on the core
  void attend_reset(iscsi::IscsiConnection* from, uint32_t vdisk, bool all,
                    std::function<void()> done);
  void closed(iscsi::IscsiConnection* connection, unsigned core);
  void reservation(iscsi::IscsiConnection* from, iscsi::Task* task, uint32_t vdisk,
                   const ReservationRequest& request);
  void destroy(iscsi::IscsiConnection* connection);
  void forget(int fd);
};

IscsiPort::IscsiPort(UniqueFd listener, std::string address, std::vector<IscsiCore> cores,
                     iscsi::CorePost post, IscsiPortOptions options)
    : impl_(new Impl()) {
  impl_->listener = std::move(listener);
  impl_->address = std::move(address);
  impl_->port = local_port(impl_->listener.get());
  impl_->cores = std::move(cores);
  impl_->post = std::move(post);
  impl_->options = std::move(options);
  impl_->listener_loopback = is_loopback(local_ip(impl_->listener.get()));
  impl_->core_versions.reset(new std::atomic<uint64_t>[impl_->cores.size()]);
  for (size_t i = 0; i < impl_->cores.size(); ++i) impl_->core_versions[i] = 0;
  impl_->core_given.assign(impl_->cores.size(), 0);
  impl_->core_draining.assign(impl_->cores.size(), 0);
  for (auto& core : impl_->cores)
    impl_->tasks.push_back(
        std::make_unique<iscsi::TaskPool>("iscsi.tasks", core.io->requests().capacity()));
}

IscsiPort::~IscsiPort() { stop(); }

std::string IscsiPort::describe() const { return "iscsi://" + impl_->address; }

void IscsiPort::start() {
  spdlog::info("iscsi: on {}{}", impl_->address,
               impl_->listener_loopback
                   ? ": while no hosts are defined, loopback initiators reach every vdisk"
                   : " (not loopback): only hosts, by IQN, reach the vdisks mapped to them");
  impl_->acceptor = std::thread([this] { impl_->accept_loop(); });
}

void IscsiPort::set_exports(std::shared_ptr<const VirtMap> map) {
  std::lock_guard lock(impl_->mu);
  impl_->exports = std::move(map);
  impl_->follow_exports();
}

void IscsiPort::set_peer_portal(uint32_t node, const std::string& host, uint16_t port) {
  std::lock_guard lock(impl_->mu);
  auto& p = impl_->peer_portals[node];
  if (p.address != host || p.port != port)
    spdlog::info("iscsi: node {}'s portal is {}:{}", node, host, port);
  p = iscsi::Portal{host, port, iscsi::port_group_of(node)};
}

void IscsiPort::peer_reset(uint32_t vdisk, bool all, std::function<void()> done) {
  std::lock_guard lock(impl_->mu);
  impl_->attend_reset(nullptr, vdisk, all, std::move(done));
}

// Under mu: each serving connection but `from` (which resets its own) gets
// the reset, on its core: a unit attention, and its tasks for the unit
// end. `done` once every one of them has its tasks out of the stack (a
// connection that ends meanwhile still gives them back first); it runs on
// a core, with or without mu held, so it must not take mu.
void IscsiPort::Impl::attend_reset(iscsi::IscsiConnection* from, uint32_t vdisk, bool all,
                                   std::function<void()> done) {
  auto left = std::make_shared<std::atomic<size_t>>(1);  // (one for this loop)
  auto one_done = [left, done = std::move(done)] {
    if (left->fetch_sub(1) == 1) done();
  };
  for (auto& [connection, a] : serving) {
    // (The resetting nexus ends its own tasks, on each of its connections.)
    if (a.revoked || (from && connection->session() == from->session())) continue;
    left->fetch_add(1);
    post(a.core, [this, connection = connection, vdisk, all, one_done] {
      std::lock_guard lock(mu);
      if (serving.count(connection))
        connection->reset_elsewhere(vdisk, all, one_done);
      else
        one_done();
    });
  }
  one_done();
}

void IscsiPort::set_paths(std::shared_ptr<const HostPaths> paths) {
  std::lock_guard lock(impl_->mu);
  impl_->paths = std::move(paths);
  impl_->follow_exports();
}

size_t IscsiPort::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->fds.size();
}

size_t IscsiPort::sessions() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

void IscsiPort::stop() {
  auto& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
    for (int fd : m.fds) ::shutdown(fd, SHUT_RDWR);
    m.cv.notify_all();  // (joins waiting for a leading login)
  }
  if (m.acceptor.joinable()) m.acceptor.join();
  std::unique_lock lock(m.mu);
  m.cv.wait(lock, [&] { return m.fds.empty() && m.handshaking == 0; });
}

uint64_t IscsiPort::applied_version() const {
  uint64_t least = UINT64_MAX;
  for (size_t i = 0; i < impl_->cores.size(); ++i)
    least = std::min(least, impl_->core_versions[i].load());
  return least;
}

void IscsiPort::Impl::follow_exports() {
  if (!exports) return;
  const uint64_t version = exports->version;
  for (auto& [connection, a] : serving) {
    if (a.revoked) continue;
    iscsi::IscsiAccess access = resolve_iscsi_access(*exports, a.client, listener_loopback);
    std::vector<iscsi::Unit> now = iscsi::units_of(*exports, access.luns, paths.get());
    if (!access.policy.allowed || remapped(a.units, now)) {
      a.revoked = true;
      spdlog::info("iscsi: closing {}'s connection: {}", a.client.initiator,
                   access.policy.allowed ? "a LUN of it leads to another vdisk now"
                                         : access.policy.why);
      connection->shutdown();
      continue;
    }
    a.units = now;
    // (On its core, if it is still there: its end may be queued first.)
    post(a.core, [this, connection = connection, core = a.core, now = std::move(now)]() mutable {
      std::lock_guard lock(mu);
      if (serving.count(connection) && connection->set_units(std::move(now)))
        ++core_draining[core];
    });
  }
  // Once each core has run what is posted above, its connections follow
  // this version (a core runs what is posted to it in order), unless some
  // wait for preempted tasks.
  for (unsigned core = 0; core < cores.size(); ++core)
    post(core, [this, core, version] {
      core_given[core] = std::max(core_given[core], version);
      if (core_draining[core] == 0) publish_version(core);
    });
}

void IscsiPort::Impl::publish_version(unsigned core) {
  const uint64_t version = core_given[core];
  uint64_t was = core_versions[core].load();
  while (was < version && !core_versions[core].compare_exchange_weak(was, version)) {
  }
}

void IscsiPort::Impl::accept_loop() {
  accept_connections(
      listener.get(), "iscsi",
      [this] {
        std::lock_guard lock(mu);
        return stopping;
      },
      [this](int fd) {
        std::lock_guard lock(mu);
        if (stopping) {
          ::close(fd);
          return false;
        }
        if (fds.size() >= options.max_connections) {
          if (refused++ % 1000 == 0)
            spdlog::warn("iscsi: {} connections open, refusing more ({} refused so far)",
                         fds.size(), refused);
          ::close(fd);
          return true;
        }
        fds.insert(fd);
        ++handshaking;
        size_t core = next_core++ % cores.size();
        std::thread([this, fd, core] { handshake(fd, core); }).detach();
        return true;
      });
}

void IscsiPort::Impl::forget(int fd) {
  fds.erase(fd);
  ::close(fd);
  cv.notify_all();
}

void IscsiPort::Impl::handshake(int fd, size_t core) {
  std::shared_ptr<const VirtMap> map;
  std::shared_ptr<const HostPaths> host_paths;
  uint16_t tsih = 0;
  // This node's portal (the address the initiator reached), then the others'.
  std::vector<iscsi::Portal> portals{{local_ip(fd), port, options.portal_group}};
  {
    std::lock_guard lock(mu);
    map = exports ? exports : std::make_shared<const VirtMap>();
    host_paths = paths;
    for (const auto& [node, p] : peer_portals)
      if (p.group != options.portal_group) portals.push_back(p);
    tsih = new_tsih();
    leading.insert(tsih);
  }
  const uint16_t own_tsih = tsih;
  const std::string target =
      options.target_name.empty() ? iscsi::default_target_name(*map) : options.target_name;
  iscsi::IscsiClient client{{}, peer_ip(fd)};
  iscsi::IscsiAccess access;
  iscsi::LoginConfig config;
  config.target_name = target;
  config.portal_group_tag = options.portal_group;
  config.tsih = tsih;
  config.command_window = options.command_window;
  config.offer.max_connections = options.session_connections;
  // A join answered yes: its connection is arriving at its session until
  // it is on the core (serve_on_core) or its login fails (below).
  uint16_t arriving_tsih = 0;
  config.join = [this, own_tsih, fd, &arriving_tsih](const std::string& initiator_port,
                                                     uint16_t joined, uint16_t cid) {
    iscsi::JoinAnswer answer = may_join_once_led(initiator_port, joined, own_tsih, cid, fd);
    if (answer.status == iscsi::LoginStatus::success) arriving_tsih = joined;
    return answer;
  };
  config.policy = [&](const std::string& initiator, iscsi::SessionType) {
    client.initiator = initiator;
    access = resolve_iscsi_access(*map, client, listener_loopback);
    return access.policy;
  };
  set_io_timeouts(fd, options.handshake_timeout_ms);
  iscsi::LoginOutcome login = iscsi::run_login(fd, std::move(config));
  if (login.logged_in && login.type == iscsi::SessionType::discovery) {
    std::string why = iscsi::serve_discovery(fd, login, target, portals, options.command_window);
    spdlog::debug("iscsi: discovery session of {} ended: {}", login.initiator, why);
    std::lock_guard lock(mu);
    handshake_ended(own_tsih);
    forget(fd);
    return;
  }
  set_io_timeouts(fd, 0);
  // (Held to the end: a join waiting for this session finds it registered.)
  std::lock_guard lock(mu);
  handshake_ended(own_tsih);
  if (!login.logged_in || stopping) {
    forget_arriving(arriving_tsih, fd);
    if (!login.logged_in)
      spdlog::info("iscsi: login from {} ({}) refused or ended: {}", client.address,
                   client.initiator.empty() ? "unnamed" : client.initiator, login.reason);
    forget(fd);
    return;
  }
  iscsi::ConnectionSetup setup;
  setup.params = login.params;
  if (login.joined) {
    // Another connection of a session (checked again: it may have ended,
    // or filled, while this one logged in): the session's parameters with
    // this connection's own, on the session's core.
    iscsi::JoinAnswer join = may_join(login.initiator_port, login.joined, login.cid, fd);
    if (join.status != iscsi::LoginStatus::success) {
      spdlog::info("iscsi: {}'s connection {} to session {} refused: {}", login.initiator_port,
                   login.cid, login.joined, join.why);
      forget_arriving(arriving_tsih, fd);
      forget(fd);
      return;
    }
    Session& joined = sessions.at(login.joined);
    setup.params = joined.params;
    setup.params.header_digest = login.params.header_digest;
    setup.params.data_digest = login.params.data_digest;
    setup.params.initiator_max_recv = login.params.initiator_max_recv;
    setup.params.target_max_recv = login.params.target_max_recv;
    setup.session = joined.shared;
    tsih = login.joined;
    // A connection ID the session has already: the old connection is
    // replaced (RFC 7143 6.3.4, connection reinstatement), its tasks end.
    for (auto& [connection, a] : serving)
      if (a.tsih == tsih && a.cid == login.cid &&
          connection->session() == joined.shared.get()) {
        spdlog::info("iscsi: {}'s connection {} logged in again: the old one closes",
                     login.initiator_port, login.cid);
        connection->shutdown();
      }
    for (auto& [other, a] : joined.arriving)
      if (other != fd && a.cid == login.cid) a.logged_out = true;  // (replaced on its way)
  } else {
    // A new session of an initiator port that has one here replaces it
    // (session reinstatement, RFC 7143 6.3.5): the old one's connections
    // close, and their tasks end.
    reinstate(login.initiator_port);
    setup.session =
        std::make_shared<iscsi::SessionShared>(login.exp_cmd_sn, options.command_window);
  }
  setup.cid = login.cid;
  setup.exp_cmd_sn = login.exp_cmd_sn;
  setup.stat_sn = login.stat_sn;
  setup.command_window = options.command_window;
  setup.units = iscsi::units_of(*map, access.luns, host_paths.get());
  setup.target_name = target;
  setup.initiator = login.initiator;
  setup.gate = options.gate;
  setup.transition_ms = options.transition_ms;
  setup.on_reset = [this](iscsi::IscsiConnection* from, iscsi::Task* tmf, uint32_t vdisk,
                          bool all) {
    std::lock_guard lock(mu);
    auto it = serving.find(from);
    if (it == serving.end()) return false;
    // Answered once this node's other connections and the other nodes have
    // their tasks for the unit out of the stacks.
    auto left = std::make_shared<std::atomic<int>>(options.tell_peers_reset ? 2 : 1);
    auto told = [this, left, from, tmf, core = it->second.core] {
      if (left->fetch_sub(1) != 1) return;
      post(core, [this, from, tmf] {
        std::lock_guard lock(mu);
        if (serving.count(from)) from->reset_told(*tmf);
      });
    };
    attend_reset(from, vdisk, all, told);
    if (options.tell_peers_reset) options.tell_peers_reset(vdisk, all, told);
    return true;
  };
  setup.nexus = {login.initiator_port, options.portal_group};
  if (options.reserve)
    setup.on_reservation = [this](iscsi::IscsiConnection* from, iscsi::Task* task,
                                  uint32_t vdisk, const ReservationRequest& request) {
      reservation(from, task, vdisk, request);
    };
  setup.send_targets = [target, portals](const std::string& value) {
    return iscsi::send_targets(value, iscsi::SessionType::normal, target, portals).pairs;
  };
  setup.log_out_arriving = [this, tsih](uint16_t cid) {
    std::lock_guard lock(mu);
    auto s = sessions.find(tsih);
    if (s == sessions.end()) return false;
    bool found = false;
    for (auto& [socket, a] : s->second.arriving)
      if (a.cid == cid) found = a.logged_out = true;
    return found;
  };
  // On the core of its first LUN's vdisk (its cache partition): most
  // sessions reach one vdisk, or vdisks of one core. A session's other
  // connections join it there.
  if (login.joined) {
    core = sessions.at(tsih).core;
  } else {
    if (!setup.units.empty()) core = setup.units.front().lu.volume % cores.size();
    Session& made = sessions[tsih];
    made.initiator_port = login.initiator_port;
    made.core = static_cast<unsigned>(core);
    made.params = login.params;
    made.shared = setup.session;
  }
  ++sessions.at(tsih).connections;
  if (auto a = sessions.at(tsih).arriving.find(fd); a != sessions.at(tsih).arriving.end())
    a->second.counted = true;
  spdlog::info("iscsi: {} logged in{}: {} with {} LUNs (core {}; session {}, connection {}; "
               "header digest {}, data digest {})",
               login.initiator_port, login.joined ? " again" : "", access.policy.why,
               setup.units.size(), core, tsih, login.cid,
               login.params.header_digest ? "CRC32C" : "none",
               login.params.data_digest ? "CRC32C" : "none");
  Admitted admitted{client, setup.units, static_cast<unsigned>(core), false, tsih, login.cid};
  post(static_cast<unsigned>(core),
       [this, fd, setup = std::move(setup), core, admitted = std::move(admitted)]() mutable {
         serve_on_core(fd, std::move(setup), static_cast<unsigned>(core), std::move(admitted));
       });
}

// Under mu: whether connection `cid` may join session `tsih` (a login
// with that TSIH) for this initiator port: it must be the session's own,
// and the session have room for one more. Connections of the session by
// that CID take no room: they are replaced (reinstatement) or already
// ended (logged out, their tasks not yet back; they count until then).
iscsi::JoinAnswer IscsiPort::Impl::may_join(const std::string& initiator_port, uint16_t tsih,
                                            uint16_t cid, int fd) const {
  iscsi::JoinAnswer answer;
  auto it = sessions.find(tsih);
  if (it == sessions.end() || it->second.initiator_port != initiator_port) {
    answer.why = "no session " + std::to_string(tsih) + " of " + initiator_port + " here";
    return answer;
  }
  size_t replaced = 0;
  for (const auto& [connection, a] : serving)
    if (a.tsih == tsih && a.cid == cid && connection->session() == it->second.shared.get())
      ++replaced;
  for (const auto& [other, a] : it->second.arriving)
    if (other != fd && a.cid == cid && a.counted) ++replaced;
  if (it->second.connections - replaced >= it->second.params.max_connections) {
    answer.status = iscsi::LoginStatus::too_many_connections;
    answer.why = "session " + std::to_string(tsih) + " has its " +
                 std::to_string(it->second.params.max_connections) + " connections";
    return answer;
  }
  answer.status = iscsi::LoginStatus::success;
  return answer;
}

// A join of session `tsih` whose leading login may have answered and not
// registered it yet: waits for that login's handshake to end (bounded by
// the handshake's own time), then as may_join. `own`: the TSIH the joining
// handshake holds (a join naming it waits for nothing).
iscsi::JoinAnswer IscsiPort::Impl::may_join_once_led(const std::string& initiator_port,
                                                     uint16_t tsih, uint16_t own,
                                                     uint16_t cid, int fd) {
  std::unique_lock lock(mu);
  if (tsih != own)
    cv.wait_for(lock, std::chrono::milliseconds(options.handshake_timeout_ms),
                [&] { return stopping || !leading.count(tsih); });
  iscsi::JoinAnswer answer = may_join(initiator_port, tsih, cid, fd);
  if (answer.status == iscsi::LoginStatus::success) sessions.at(tsih).arriving[fd].cid = cid;
  return answer;
}

// Under mu: a join answered yes will not reach its core after all.
void IscsiPort::Impl::forget_arriving(uint16_t tsih, int fd) {
  if (tsih == 0) return;
  if (auto s = sessions.find(tsih); s != sessions.end()) s->second.arriving.erase(fd);
}

// Under mu: a handshake that held `tsih` is over.
void IscsiPort::Impl::handshake_ended(uint16_t tsih) {
  --handshaking;
  leading.erase(tsih);
  cv.notify_all();
}

// Under mu: a TSIH no session or login here has (0 means "a new session").
uint16_t IscsiPort::Impl::new_tsih() {
  for (;;) {
    uint16_t tsih = next_tsih++;
    if (next_tsih == 0) next_tsih = 1;
    if (tsih != 0 && !sessions.count(tsih) && !leading.count(tsih)) return tsih;
  }
}

// Under mu: the sessions of `initiator_port` end; their connections close.
void IscsiPort::Impl::reinstate(const std::string& initiator_port) {
  for (auto it = sessions.begin(); it != sessions.end();) {
    if (it->second.initiator_port != initiator_port) {
      ++it;
      continue;
    }
    spdlog::info("iscsi: {} logged in anew: its session {} ends", initiator_port, it->first);
    for (auto& [connection, a] : serving)
      if (a.tsih == it->first) connection->shutdown();
    it = sessions.erase(it);
  }
}

// On the core's thread from here on.
void IscsiPort::Impl::serve_on_core(int fd, iscsi::ConnectionSetup setup, unsigned core,
                                    Admitted admitted) {
  setup.on_preempt_drained = [this, core] {
    if (--core_draining[core] == 0) publish_version(core);
  };
  iscsi::CoreRoute route;
  route.home = core;
  for (auto& c : cores) route.tops.push_back(c.top);
  route.post = post;
  auto* connection = new iscsi::IscsiConnection(
      fd, std::move(setup), *cores[core].io, *tasks[core], std::move(route),
      [this, core](iscsi::IscsiConnection* c) { closed(c, core); });
  {
    std::lock_guard lock(mu);
    // A joined connection is in its session now (the constructor put it
    // there, on this core): no longer arriving. Logged out on its way: it
    // closes.
    bool logged_out = false;
    if (auto s = sessions.find(admitted.tsih); s != sessions.end()) {
      if (auto a = s->second.arriving.find(fd); a != s->second.arriving.end()) {
        logged_out = a->second.logged_out;
        s->second.arriving.erase(a);
      }
    }
    serving.emplace(connection, std::move(admitted));
    if (stopping || logged_out) connection->shutdown();
    follow_exports();  // (the map may have changed since its login)
  }
  connection->start();
}

// A nexus's reservation request, to the node; the answer back to the task
// on its connection's core, if both are still there.
void IscsiPort::Impl::reservation(iscsi::IscsiConnection* from, iscsi::Task* task,
                                  uint32_t vdisk, const ReservationRequest& request) {
  options.reserve(vdisk, from->nexus(), request,
                  [this, from, task](ReservationOutcome outcome) {
                    if (!task) return;
                    std::lock_guard lock(mu);
                    auto it = serving.find(from);
                    if (it == serving.end()) return;
                    post(it->second.core, [this, from, task, outcome] {
                      std::lock_guard lock(mu);
                      if (serving.count(from)) from->reservation_done(*task, outcome);
                    });
                  });
}

void IscsiPort::Impl::closed(iscsi::IscsiConnection* connection, unsigned core) {
  post(core, [this, connection] { destroy(connection); });
}

void IscsiPort::Impl::destroy(iscsi::IscsiConnection* connection) {
  const iscsi::ConnectionStats& stats = connection->stats();
  spdlog::info("iscsi: {} closed: {} ({} commands, {} errors, {} waits for memory, {} served by "
               "another core)",
               connection->initiator(), connection->end_reason(), stats.commands, stats.errors,
               stats.waits, stats.remote);
  int fd = connection->fd();
  // The session's last connection: the I_T nexus is lost, and its SPC-2
  // reservations end (not its persistent ones). Nobody waits for the
  // answer.
  const bool last = connection->session()->connections.size() == 1;
  if (options.reserve && last)
    for (const iscsi::Unit& u : connection->units()) {
      const Reservations* r = u.lu.reservations.get();
      if (!r || !r->reserved || !(r->reserved_by == connection->nexus())) continue;
      ReservationRequest lost;
      lost.kind = ReservationRequest::Kind::nexus_lost;
      options.reserve(u.lu.volume, connection->nexus(), lost, [](ReservationOutcome) {});
    }
  std::lock_guard lock(mu);
  auto it = serving.find(connection);
  if (it != serving.end()) {
    auto session = sessions.find(it->second.tsih);
    // (A session reinstated meanwhile is another session by that TSIH.)
    if (session != sessions.end() && session->second.shared.get() == connection->session() &&
        --session->second.connections == 0)
      sessions.erase(session);
    serving.erase(it);
  }
  delete connection;
  forget(fd);
}

}  // namespace sve

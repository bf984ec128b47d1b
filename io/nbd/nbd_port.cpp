#include "io/nbd/nbd_port.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "hw/port/tcp.hpp"
#include "model/host_access.hpp"
#include "io/tls/tls_server.hpp"
#include "model/virt_map.hpp"

namespace sve {
namespace {

class MapCatalog final : public nbd::ExportCatalog {
 public:
  MapCatalog(std::shared_ptr<const VirtMap> map, const ServiceGate* gate,
             const HostClient& client, bool listener_loopback)
      : map_(std::move(map)), gate_(gate), client_(client), loopback_(listener_loopback) {
    if (map_) access_ = resolve_access(*map_, client_, loopback_);
  }
  void identify(const std::string& tls_identity) override {
    client_.tls_identity = tls_identity;
    if (map_) access_ = resolve_access(*map_, client_, loopback_);
  }
  const HostClient& client() const { return client_; }
  std::string refusal() const override {
    return gate_ && !gate_->open() ? gate_->why_closed() : std::string();
  }
  // A vdisk not mapped to the client's host is as if it did not exist.
  std::optional<nbd::ExportInfo> find(const std::string& name) const override {
    const VolumeLayout* v = map_ ? map_->find(name) : nullptr;
    if (!v || v->hidden) return std::nullopt;  // a mapping's bitmap is not a host's
    std::optional<bool> read_only = access_.read_only(v->id);
    if (!read_only) return std::nullopt;
    bool mapped = false;
    for (const auto& [id, c] : map_->copies) mapped |= c.source == v->id || c.target == v->id;
    return nbd::ExportInfo{v->id, v->size_bytes, v->name,
                           "SVE vdisk " + v->name + " (id " + std::to_string(v->id) + ")",
                           v->read_only || *read_only, v->thin() || mapped};
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    if (map_)
      for (const auto& [id, v] : map_->volumes)
        if (!v.hidden && access_.read_only(id)) out.push_back(v.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  const Access& access() const { return access_; }

 private:
  std::shared_ptr<const VirtMap> map_;
  const ServiceGate* gate_;
  HostClient client_;
  bool loopback_;
  Access access_;
};

// Whether a connection let in as `client` for `volume` may go on under
// `map`: still mapped to its host. (A vdisk made read-only keeps its
// connections: the stack refuses their writes, as it does everyone's.)
bool still_admitted(const VirtMap& map, const HostClient& client, bool listener_loopback,
                    uint32_t volume) {
  return resolve_access(map, client, listener_loopback).read_only(volume).has_value();
}

}  // namespace

struct NbdPort::Impl {
  UniqueFd listener;
  std::string address;
  std::vector<NbdCore> cores;
  CorePost post;
  nbd::SessionLimits limits;
  size_t max_connections = 1024;
  uint64_t refused = 0;
  // One slot pool per core, used only on that core.
  std::vector<std::unique_ptr<nbd::SlotPool>> slots;

  std::thread acceptor;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const VirtMap> exports;
  bool stopping = false;
  size_t next_core = 0;
  bool by_volume = false;
  std::set<int> fds;     // every connection's socket, handshaking or serving
  size_t handshaking = 0;
  bool listener_loopback = false;
  std::shared_ptr<const TlsServer> tls;
  TlsMode tls_mode = TlsMode::off;
  uint32_t handshake_timeout_ms = 30000;
  // Who a serving connection was let in as, so that it is closed once
  // that no longer holds (its vdisk unmapped, its host deleted).
  struct Admitted {
    HostClient client;
    uint32_t volume = 0;
    bool revoked = false;
  };
  std::map<nbd::NbdSession*, Admitted> sessions;  // serving; each owned by its core

  void accept_loop();
  void handshake(int fd, size_t core);
  void serve_on_core(int fd, nbd::ExportInfo chosen, nbd::Negotiated negotiated, size_t core,
                     HostClient client, std::shared_ptr<TlsSession> tls);
  // Under mu: ends the connections `exports` no longer lets in.
  void close_revoked();
  void closed(nbd::NbdSession* session, size_t core);
  void destroy(nbd::NbdSession* session);
};

NbdPort::NbdPort(UniqueFd listener, std::string address, std::vector<NbdCore> cores,
                 CorePost post, nbd::SessionLimits limits, size_t max_connections)
    : impl_(new Impl()) {
  impl_->listener = std::move(listener);
  impl_->address = std::move(address);
  impl_->cores = std::move(cores);
  impl_->post = std::move(post);
  impl_->limits = limits;
  impl_->max_connections = max_connections;
  impl_->listener_loopback = is_loopback(local_ip(impl_->listener.get()));
  for (auto& core : impl_->cores)
    impl_->slots.push_back(std::make_unique<nbd::SlotPool>(
        "nbd.slots", core.io->requests().capacity()));
}

NbdPort::~NbdPort() { stop(); }

std::string NbdPort::describe() const { return "nbd://" + impl_->address; }

void NbdPort::start() {
  if (impl_->listener_loopback)
    spdlog::info("nbd: on {}: while no hosts are defined, loopback clients reach every vdisk; "
                 "once hosts exist, each reaches only the vdisks mapped to it",
                 impl_->address);
  else
    spdlog::info("nbd: on {} (not loopback): only hosts reach the vdisks mapped to them",
                 impl_->address);
  impl_->acceptor = std::thread([this] { impl_->accept_loop(); });
}

void NbdPort::place_by_volume(bool on) { impl_->by_volume = on; }

void NbdPort::set_handshake_timeout(uint32_t ms) { impl_->handshake_timeout_ms = ms; }

void NbdPort::set_tls(std::shared_ptr<const TlsServer> server, TlsMode mode) {
  impl_->tls = std::move(server);
  impl_->tls_mode = impl_->tls ? mode : TlsMode::off;
}

void NbdPort::set_exports(std::shared_ptr<const VirtMap> map) {
  std::lock_guard lock(impl_->mu);
  impl_->exports = std::move(map);
  impl_->close_revoked();
}

void NbdPort::Impl::close_revoked() {
  if (!exports) return;
  for (auto& [session, a] : sessions)
    if (!a.revoked &&
        !still_admitted(*exports, a.client, listener_loopback, a.volume)) {
      a.revoked = true;
      spdlog::info("nbd: closing {}'s connection to {}: no longer mapped to it as it was",
                   a.client.address, session->export_info().name);
      session->shutdown();
    }
}

size_t NbdPort::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->fds.size();
}

void NbdPort::stop() {
  auto& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
    for (int fd : m.fds) ::shutdown(fd, SHUT_RDWR);
  }
  // No shutdown() of the listener: its accept loop polls the stop flag, and
  // the socket may be shared with the configuration process, which keeps it.
  if (m.acceptor.joinable()) m.acceptor.join();
  // Every session drains its requests and closes on its core.
  std::unique_lock lock(m.mu);
  m.cv.wait(lock, [&] { return m.fds.empty() && m.handshaking == 0; });
}

void NbdPort::Impl::accept_loop() {
  // (No shutdown() of the listener to stop: the socket may be shared with
  // the configuration process, which keeps it; the loop asks instead.)
  accept_connections(
      listener.get(), "nbd",
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
        if (fds.size() >= max_connections) {
          if (refused++ % 1000 == 0)
            spdlog::warn("nbd: {} connections open, refusing more ({} refused so far)",
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

void NbdPort::Impl::handshake(int fd, size_t core) {
  std::shared_ptr<const VirtMap> snapshot;
  {
    std::lock_guard lock(mu);
    snapshot = exports;
  }
  MapCatalog catalog(snapshot, limits.gate, HostClient{peer_ip(fd), {}}, listener_loopback);
  // A client that stops sending, or stops taking the replies, is closed
  // (run_handshake's reads and writes fail); the session's core does not
  // use these.
  set_io_timeouts(fd, handshake_timeout_ms);
  auto hs = nbd::run_handshake(fd, catalog, tls.get(), tls_mode);
  set_io_timeouts(fd, 0);
  HostClient client = catalog.client();
  std::lock_guard lock(mu);
  --handshaking;
  if (!hs.go || stopping) {
    if (!hs.go) spdlog::debug("nbd: connection closed during handshake: {}", hs.reason);
    if (!hs.go && hs.reason.rfind("TLS", 0) == 0)
      spdlog::info("nbd: {}: {}", client.address, hs.reason);  // a wrong key, say
    fds.erase(fd);
    ::close(fd);
    cv.notify_all();
    return;
  }
  // By vdisk with the cache on (a partition caches each vdisk), and for a
  // vdisk whose layers keep state per core (thin, point-in-time copy).
  if (by_volume || hs.chosen.partitioned) core = hs.chosen.volume % cores.size();
  spdlog::info("nbd: {} opened {}{} (core {})", catalog.access().why, hs.chosen.name,
               hs.chosen.read_only ? " read-only" : "", core);
  post(static_cast<unsigned>(core),
       [this, fd, chosen = hs.chosen, negotiated = hs.negotiated, core, client, tls = hs.tls] {
         serve_on_core(fd, chosen, negotiated, core, client, tls);
       });
}

// On the core's thread from here on.
void NbdPort::Impl::serve_on_core(int fd, nbd::ExportInfo chosen, nbd::Negotiated negotiated,
                                  size_t core, HostClient client,
                                  std::shared_ptr<TlsSession> tls) {
  Admitted admitted{std::move(client), chosen.volume, false};
  // Over TLS the session speaks the records itself, on the core's ring.
  auto records = tls ? std::make_unique<TlsRecords>(std::move(tls)) : nullptr;
  auto* session = new nbd::NbdSession(
      fd, std::move(chosen), negotiated, *cores[core].io, *slots[core], *cores[core].top, limits,
      [this, core](nbd::NbdSession* s) { closed(s, core); }, std::move(records));
  {
    std::lock_guard lock(mu);
    sessions.emplace(session, std::move(admitted));
    if (stopping) session->shutdown();
    close_revoked();  // (the map may have changed since its handshake)
  }
  session->start();
}

// Called from deep inside the session's callbacks (a ring completion, a
// pool grant): the session is destroyed by a task posted to its core, which
// runs once those calls have returned.
void NbdPort::Impl::closed(nbd::NbdSession* session, size_t core) {
  post(static_cast<unsigned>(core), [this, session] { destroy(session); });
}

void NbdPort::Impl::destroy(nbd::NbdSession* session) {
  spdlog::info("nbd: {} closed: {} ({} requests, {} waits for memory)",
               session->export_info().name, session->end_reason(),
               session->stats().requests, session->stats().waits);
  int fd = session->fd();
  std::lock_guard lock(mu);  // close under the lock: stop() shuts fds down
  sessions.erase(session);
  delete session;
  fds.erase(fd);
  ::close(fd);
  cv.notify_all();
}

}  // namespace sve

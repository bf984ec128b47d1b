#include "io/nbd/nbd_port.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/actor_port.hpp"
#include "hw/port/tcp.hpp"
#include "io/nbd/nbd_session.hpp"
#include "virt/virt_map.hpp"

namespace sve {
namespace {

class MapCatalog final : public nbd::ExportCatalog {
 public:
  explicit MapCatalog(std::shared_ptr<const VirtMap> map) : map_(std::move(map)) {}
  std::optional<nbd::ExportInfo> find(const std::string& name) const override {
    const VolumeLayout* v = map_ ? map_->find(name) : nullptr;
    if (!v) return std::nullopt;
    return nbd::ExportInfo{v->id, v->size_bytes, v->name};
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    if (map_)
      for (const auto& [id, v] : map_->volumes) out.push_back(v.name);
    return out;
  }

 private:
  std::shared_ptr<const VirtMap> map_;
};

// The front-end facility of one connection: completions arrive in its
// mailbox and it writes the replies. Detached, because a slow host may block
// its socket writes, and that must stall nobody else.
caf::behavior frontend_actor(caf::event_based_actor*, std::shared_ptr<nbd::NbdSession> session) {
  return {
      [=](io_done_atom, IoRequestPtr& done) { session->send_reply(std::move(done)); },
  };
}

}  // namespace

struct NbdPort::Impl {
  caf::actor_system& sys;
  UniqueFd listener;
  std::string address;
  std::vector<std::shared_ptr<IoServer>> stack_tops;
  std::thread acceptor;
  std::mutex mu;
  std::shared_ptr<const VirtMap> exports;
  struct Connection {
    int fd;
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  std::list<Connection> connections;
  bool stopping = false;
  size_t next_core = 0;

  void accept_loop();
  void serve(Connection& conn, size_t core);
  void reap_finished();
};

NbdPort::NbdPort(caf::actor_system& sys, UniqueFd listener, std::string address,
                 std::vector<std::shared_ptr<IoServer>> stack_tops)
    : impl_(new Impl{sys, std::move(listener), std::move(address), std::move(stack_tops),
                     {}, {}, {}, {}, false, 0}) {}

NbdPort::~NbdPort() { stop(); }

std::string NbdPort::describe() const { return "nbd://" + impl_->address; }

void NbdPort::start() {
  impl_->acceptor = std::thread([this] { impl_->accept_loop(); });
}

void NbdPort::set_exports(std::shared_ptr<const VirtMap> map) {
  std::lock_guard lock(impl_->mu);
  impl_->exports = std::move(map);
}

void NbdPort::stop() {
  auto& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
    for (auto& c : m.connections) ::shutdown(c.fd, SHUT_RDWR);
  }
  ::shutdown(m.listener.get(), SHUT_RDWR);
  if (m.acceptor.joinable()) m.acceptor.join();
  // No new connections now; wait for each to drain its requests.
  for (auto& c : m.connections)
    if (c.thread.joinable()) c.thread.join();
  m.connections.clear();
}

void NbdPort::Impl::reap_finished() {
  for (auto it = connections.begin(); it != connections.end();) {
    if (it->finished.load()) {
      it->thread.join();
      it = connections.erase(it);
    } else {
      ++it;
    }
  }
}

void NbdPort::Impl::accept_loop() {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    set_nodelay(fd);
    std::lock_guard lock(mu);
    if (stopping) {
      ::close(fd);
      return;
    }
    reap_finished();
    auto& conn = connections.emplace_back();
    conn.fd = fd;
    size_t core = next_core++ % stack_tops.size();
    conn.thread = std::thread([this, &conn, core] { serve(conn, core); });
  }
}

void NbdPort::Impl::serve(Connection& conn, size_t core) {
  std::shared_ptr<const VirtMap> snapshot;
  {
    std::lock_guard lock(mu);
    snapshot = exports;
  }
  MapCatalog catalog(snapshot);
  auto hs = nbd::run_handshake(conn.fd, catalog);
  if (!hs.go) {
    spdlog::debug("nbd: connection closed during handshake: {}", hs.reason);
  } else {
    spdlog::info("nbd: host opened {} (core {})", hs.chosen.name, core);
    auto completions = std::make_shared<ActorPort>();
    auto session = std::make_shared<nbd::NbdSession>(conn.fd, hs.chosen, *stack_tops[core],
                                                     *completions);
    auto frontend = sys.spawn<caf::detached>(frontend_actor, session);
    completions->bind(frontend);
    std::string why = session->run();
    caf::anon_send_exit(frontend, caf::exit_reason::user_shutdown);
    spdlog::info("nbd: {} closed: {}", hs.chosen.name, why);
  }
  ::shutdown(conn.fd, SHUT_RDWR);
  ::close(conn.fd);
  conn.finished.store(true);
}

}  // namespace sve

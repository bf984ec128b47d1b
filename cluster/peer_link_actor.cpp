// The heartbeat link to one peer: one actor per configured peer, owning the
// connection to that peer's cluster actor over CAF's middleman. The cluster
// actor hands it every message for the peer (heartbeats most of all); the
// link connects on demand (at most every kReconnectMs while it fails),
// monitors the remote actor and drops it when the connection goes, so that
// a slow or dead peer holds up nobody else. Messages meanwhile are dropped:
// the protocol resends what matters, and a silent peer is what the
// heartbeats exist to notice.
#include <chrono>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/probe_note.hpp"
#include "actors/spawn.hpp"
#include "hw/port/tcp.hpp"
#include "io/channel/cluster_tunnel.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

constexpr uint64_t kReconnectMs = 500;

struct PeerLinkState {
  static inline const char* name = "heartbeat";
  caf::actor owner;  // this node's cluster actor, in whose name it sends
  uint32_t peer = 0;
  std::string address;  // empty: known only from its own connection to us
  std::shared_ptr<channel::ClusterTunnel> tunnel;  // the node's, or null
  caf::actor remote;
  uint64_t connect_started = 0;
  bool connecting = false;
  uint64_t sent = 0, dropped = 0;
  ActorProbe probe;
};

using Self = caf::stateful_actor<PeerLinkState>;

void adopt_remote(Self* self, caf::actor remote) {
  if (!remote || self->state.remote == remote) return;
  self->monitor(remote);
  self->state.remote = std::move(remote);
}

void connect(Self* self) {
  auto& st = self->state;
  uint64_t now = monotonic_ms();
  if (st.connecting || now - st.connect_started < kReconnectMs) return;
  auto addr = channel::link_target(st.tunnel.get(), st.address);
  if (!addr) return;
  std::string host = addr->host;
  uint16_t port = addr->port;
  st.connect_started = now;
  st.connecting = true;
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds(2), caf::connect_atom::value, host, port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            self->state.connecting = false;
            if (!ptr) return;
            adopt_remote(self, caf::actor_cast<caf::actor>(ptr));
            spdlog::info("cluster: connected to node {} at {}", self->state.peer,
                         self->state.address);
          },
          [=](caf::error&) { self->state.connecting = false; });
}

caf::behavior peer_link(Self* self, caf::actor owner, uint32_t peer, std::string address,
                        std::shared_ptr<channel::ClusterTunnel> tunnel) {
  self->state.owner = std::move(owner);
  self->state.tunnel = std::move(tunnel);
  self->state.peer = peer;
  self->state.address = std::move(address);
  self->state.probe = {"heartbeat/" + std::to_string(peer), "heartbeat", -1};
  self->set_down_handler([self](caf::down_msg& down) {
    if (self->state.remote && self->state.remote.address() == down.source) {
      self->state.remote = caf::actor{};
      spdlog::info("cluster: lost the connection to node {}", self->state.peer);
    }
  });
  return guarded_behavior(self, &self->state.probe.name,
      // A message for the peer, as the cluster actor addressed it.
      [=](inspect_atom) {
        auto& st = self->state;
        return st.probe.answer(self->mailbox().size(),
                               {{"peer", st.peer}, {"address", st.address},
                                {"connected", static_cast<bool>(st.remote)},
                                {"connecting", st.connecting}, {"sent", st.sent},
                                {"dropped", st.dropped}});
      },
      [=](trace_atom, uint32_t n) { self->state.probe.start_trace(n); },
      [=](cluster_atom, const std::string& cluster, uint32_t from, const std::string& bytes) {
        auto& st = self->state;
        note(self, st.probe);
        if (st.remote) {
          // As the cluster actor: the peer answers it, not this link.
          caf::send_as(st.owner, st.remote, cluster_atom::value, cluster, from, bytes);
          ++st.sent;
        } else {
          ++st.dropped;
          connect(self);
        }
      },
      // The peer's address changed, or the peer reached us first.
      [=](peer_atom, const std::string& address) {
        if (!address.empty()) self->state.address = address;
      },
      [=](peer_atom, const caf::actor& remote) { adopt_remote(self, remote); },
      // The peer's interconnect, asked of its cluster actor on this link's
      // connection (null while there is none).
      [=](interconnect_atom) -> caf::result<caf::actor> {
        if (!self->state.remote) return caf::actor{};
        auto promise = self->make_response_promise<caf::actor>();
        promise.delegate(self->state.remote, interconnect_atom::value);
        return promise;
      }
  );
}

}  // namespace

caf::actor spawn_peer_link(caf::actor_system& sys, caf::actor owner, uint32_t peer,
                           std::string address, std::shared_ptr<channel::ClusterTunnel> tunnel) {
  return sys.spawn<caf::detached>(peer_link, std::move(owner), peer, std::move(address),
                                  std::move(tunnel));
}

}  // namespace sve

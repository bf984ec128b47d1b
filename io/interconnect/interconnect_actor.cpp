// The node's interconnect: the one actor through which this node's I/O
// reaches other nodes, and theirs reaches this node.
//
// Outbound, a request whose vdisk another node owns arrives from a core's
// forward facility. It travels, with a write's payload, as one fwd message
// to the owner's interconnect actor (found by asking the owner's cluster
// actor over CAF's middleman), and its completion goes back to the core it
// came from. If the owner cannot take it (it is unreachable, or it no longer
// owns the vdisk because a generation changed), the request waits for the
// route table to move and tries again, for up to `retry_ms`; then it fails
// with EIO. Nothing was acknowledged to the host meanwhile. Requests for a
// vdisk this node is taking over wait here the same way.
//
// Inbound, a fwd message from another node is executed on the stack of the
// core that owns the vdisk here, below the forward facility, but only while
// this node serves (holds a lease) and owns the vdisk by its own table.
// Otherwise the sender is told ESTALE.
//
// The cache's copies for the partner node travel the same way: a core's
// cache partition sends them here (mirror_to, with the partner), they go on
// to the partner's interconnect (mirror), which hands them to the partition
// that owns the vdisk there; the answer goes straight back to the sending
// partition. Their release after destage (unmirror) follows the same path
// without an answer (unmirror_to, unmirror).
//
// Detached: payload copies and serialisation stay off the I/O cores.
#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/actor_port.hpp"
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "hw/port/tcp.hpp"
#include "io/channel/cluster_tunnel.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

constexpr uint64_t kMaxForwardBytes = 32ull << 20;  // the largest host request
constexpr auto kRetryDelay = std::chrono::milliseconds(50);
// A request is sent again only when its owner is known not to have it
// (ESTALE) or is gone (its interconnect went down): never on a timeout
// alone, since the owner may still execute the first copy after a newer
// write. A request unanswered this long fails with EIO.
constexpr auto kRemoteTimeout = std::chrono::seconds(60);

// How long a LUN or target reset waits for a peer to end its sessions'
// tasks for the unit (a stalled back end holds them; a host's own
// task-management timeout is longer).
constexpr auto kPeerResetWait = std::chrono::seconds(10);
// A peer's reset done here: its answer goes (sent to itself by the port's
// callback, from whichever core ended the last task).
using reset_done_atom = caf::atom_constant<caf::atom("resetdone")>;

using Bytes = std::vector<char>;

// Inbound completions, from whichever core ran the request, back to the
// interconnect actor as messages.
struct InboundReturn final : IoClient {
  caf::actor interconnect;
  void io_done(IoRequestPtr request) override {
    caf::anon_send(interconnect, io_done_atom::value, std::move(request));
  }
};

struct Peer {
  std::string address;
  caf::actor interconnect;  // the peer's, once known
  bool connecting = false;
  std::string last_error;  // why the last try to reach it failed, for the log
};

struct Outbound {
  IoRequestPtr request;
  uint64_t give_up_ms = 0;
  bool in_flight = false;
  uint32_t peer = 0;     // where it is in flight
  uint64_t attempt = 0;  // answers to earlier attempts are ignored
  std::string why;       // why the last try did not reach the owner, for the log
};

// A gathering for the debug shell: answers still expected, and where the
// result goes. Kept in the actor's state (not in the response handlers), so
// that an actor stopping with one open holds no reference to itself.
struct Gathering {
  caf::typed_response_promise<std::string> promise;
  nlohmann::json result;
  size_t left = 0;
};

struct InterconnectState {
  static inline const char* name = "interconnect";
  uint32_t self = 0;
  const ServiceGate* gate = nullptr;
  uint64_t retry_ms = 0;
  PeerPorts ports;
  std::shared_ptr<channel::ClusterTunnel> tunnel;  // the way to peers' cluster ports, or null
  caf::actor cluster;  // this node's cluster actor: its heartbeat links reach the peers
  std::vector<std::unique_ptr<ActorPort>> cores;  // where each core takes requests
  std::vector<caf::actor> cache_actors;           // the same, as actors
  // Every actor of this node, for the debug shell's cluster view.
  std::vector<std::pair<std::string, caf::actor>> local_actors;
  std::unordered_map<uint64_t, Gathering> gatherings;
  RoutesPtr routes;
  std::map<uint32_t, Peer> peers;
  uint64_t next_id = 1;
  std::unordered_map<uint64_t, Outbound> outbound;
  std::unordered_map<uint64_t, caf::typed_response_promise<int32_t, Bytes>> inbound;
  std::unordered_map<uint64_t, caf::typed_response_promise<bool>> resets;  // peers' resets under way
  InboundReturn inbound_return;
  uint64_t forwarded = 0, served = 0, refused = 0, retries = 0;
  ActorProbe probe{"interconnect", "interconnect", -1};
};

using Self = caf::stateful_actor<InterconnectState>;

bool is_payload_op(IoOp op) {
  return op == IoOp::read || data_out_bytes(op, 1) > 0;
}

ActorPort& core_for(Self* self, uint32_t vdisk) {
  auto& cores = self->state.cores;
  return *cores[vdisk % cores.size()];
}

// Whether this node may take a request or a copy from another node now.
bool accepting(Self* self) {
  auto& st = self->state;
  return !st.cores.empty() && st.gate && st.gate->open() && st.routes && st.routes->serving;
}

void finish(Self* self, uint64_t id, int status) {
  auto it = self->state.outbound.find(id);
  if (it == self->state.outbound.end()) return;
  IoRequestPtr request = std::move(it->second.request);
  self->state.outbound.erase(it);
  complete(std::move(request), status);  // back to its core's forward facility
}

void dispatch(Self* self, uint64_t id);

void retry_later(Self* self, uint64_t id, std::string why) {
  auto it = self->state.outbound.find(id);
  if (it == self->state.outbound.end()) return;
  it->second.in_flight = false;
  it->second.why = std::move(why);
  if (monotonic_ms() >= it->second.give_up_ms) {
    spdlog::warn("interconnect: a request for vdisk {} found no owner in {} ms ({}): EIO",
                 it->second.request->volume, self->state.retry_ms, it->second.why);
    finish(self, id, EIO);
    return;
  }
  ++self->state.retries;
  self->delayed_send(self, kRetryDelay, retry_atom::value, id);
}

// What a peer said of its ports, to whoever follows them.
void told_ports(Self* self, uint32_t node, uint16_t data_port, const std::string& portal) {
  const PeerPorts& ports = self->state.ports;
  auto cluster = parse_address(self->state.peers[node].address);
  if (!cluster) return;
  if (data_port && ports.on_data_port) ports.on_data_port(node, cluster->host, data_port);
  auto iscsi = parse_address(portal);
  if (!iscsi || !ports.on_iscsi_portal) return;
  const bool wildcard = iscsi->host.empty() || iscsi->host == "0.0.0.0" || iscsi->host == "::";
  ports.on_iscsi_portal(node, wildcard ? cluster->host : iscsi->host, iscsi->port);
}

void connect_failed(Self* self, uint32_t node, std::string why) {
  Peer& p = self->state.peers[node];
  p.connecting = false;
  p.last_error = std::move(why);
}

void reached(Self* self, uint32_t node, caf::actor ic, const char* how) {
  Peer& p = self->state.peers[node];
  p.connecting = false;
  p.last_error.clear();
  if (p.interconnect == ic) return;
  self->monitor(ic);
  p.interconnect = std::move(ic);
  spdlog::info("interconnect: reached node {} ({})", node, how);
  // Where its data channel listens, for the cores, and its iSCSI portal,
  // for discovery.
  self->request(p.interconnect, std::chrono::seconds(2), data_port_atom::value)
      .then([=](uint16_t port, std::string& portal) { told_ports(self, node, port, portal); },
            [=](caf::error& e) {  // (the actor path it is)
              spdlog::debug("interconnect: node {} did not say its ports: {}", node,
                            caf::to_string(e));
            });
}

// A connection of its own to the peer's cluster port, then its cluster
// actor asked for its interconnect.
void connect_directly(Self* self, uint32_t node) {
  auto addr = channel::link_target(self->state.tunnel.get(), self->state.peers[node].address);
  if (!addr) return connect_failed(self, node, "no route: " + addr.error().message);
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds(2), caf::connect_atom::value, addr->host, addr->port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto cluster = caf::actor_cast<caf::actor>(ptr);
            if (!cluster) return connect_failed(self, node, "its cluster port published no actor");
            self->request(cluster, std::chrono::seconds(2), interconnect_atom::value)
                .then(
                    [=](caf::actor& ic) {
                      if (!ic) return connect_failed(self, node, "it has no interconnect");
                      reached(self, node, std::move(ic), "on a connection of its own");
                    },
                    [=](caf::error& e) {
                      connect_failed(self, node, "asking for its interconnect: " + caf::to_string(e));
                    });
          },
          [=](caf::error& e) { connect_failed(self, node, "connecting: " + caf::to_string(e)); });
}

// Finds the peer's interconnect actor: first through the connection this
// node's heartbeats to the peer hold (whichever side opened it), else by a
// connection of its own. (CAF's middleman answers a connect to an address
// where an earlier one never finished its handshake by waiting on that one,
// for good: a peer restarting while a link was being opened to it left this
// node unable to reach it again, though its heartbeats flowed.)
void connect(Self* self, uint32_t node) {
  Peer& peer = self->state.peers[node];
  if (peer.connecting || peer.address.empty()) return;
  peer.connecting = true;
  if (!self->state.cluster) return connect_directly(self, node);
  self->request(self->state.cluster, std::chrono::seconds(2), interconnect_atom::value, node)
      .then(
          [=](caf::actor& ic) {
            if (ic) return reached(self, node, std::move(ic), "on the heartbeats' connection");
            connect_directly(self, node);
          },
          [=](caf::error&) { connect_directly(self, node); });
}

void dispatch(Self* self, uint64_t id) {
  auto& st = self->state;
  auto it = st.outbound.find(id);
  if (it == st.outbound.end() || it->second.in_flight) return;
  IoRequestPtr& request = it->second.request;
  const RouteTable* routes = st.routes.get();
  const VdiskRoute* route = routes && routes->serving ? routes->find(request->volume) : nullptr;
  if (!route || route->owner == 0 || route->hold)
    return retry_later(self, id, !route ? "no route" : route->hold ? "held" : "no owner");
  if (route->owner == st.self) {
    // The vdisk came to this node meanwhile: run it here. Its completion
    // still goes back through its core's forward facility.
    IoRequestPtr r = std::move(request);
    st.outbound.erase(it);
    core_for(self, r->volume).submit(std::move(r));
    return;
  }
  Peer& peer = st.peers[route->owner];
  if (!peer.interconnect) {
    connect(self, route->owner);
    return retry_later(self, id, fmt::format("node {} not reached{}{}", route->owner,
                                             peer.last_error.empty() ? "" : ": ",
                                             peer.last_error));
  }
  Bytes data;
  if (uint64_t out = data_out_bytes(request->op, request->length)) {
    // (A compare-and-write carries both halves: what the range must hold,
    // then what to write.)
    data.resize(out);
    request->buffer->copy_out(request->buffer_offset, data.size(), data.data());
  }
  it->second.in_flight = true;
  it->second.peer = route->owner;
  uint64_t attempt = ++it->second.attempt;
  ++st.forwarded;
  self->request(peer.interconnect, kRemoteTimeout, fwd_atom::value, st.self, request->volume,
                static_cast<uint32_t>(request->op), request->offset, request->length,
                request->flags, std::move(data))
      .then(
          [=](int32_t status, Bytes& reply) {
            auto out = self->state.outbound.find(id);
            if (out == self->state.outbound.end() || out->second.attempt != attempt) return;
            if (status == ESTALE)  // not the owner (any more)
              return retry_later(self, id, "node " + std::to_string(out->second.peer) + " refused it");
            IoRequest& r = *out->second.request;
            if (status == 0 && r.op == IoOp::read) {
              if (reply.size() != r.length) return finish(self, id, EIO);
              r.buffer->copy_in(r.buffer_offset, r.length, reply.data());
            }
            // A compare-and-write's miscompare: where (8 bytes, this
            // host's order: one build on every node).
            if (status == EILSEQ && r.op == IoOp::compare_and_write &&
                reply.size() == sizeof(r.miscompare_at))
              std::memcpy(&r.miscompare_at, reply.data(), sizeof(r.miscompare_at));
            finish(self, id, status);
          },
          [=](caf::error& e) {
            auto out = self->state.outbound.find(id);
            if (out == self->state.outbound.end() || out->second.attempt != attempt) return;
            // It died with the request: never acknowledged, the next owner
            // gets it again. Silent too long: EIO.
            if (e == caf::sec::request_receiver_down)
              return retry_later(self, id, "the owner went down");
            finish(self, id, EIO);
          });
}

caf::result<int32_t, Bytes> serve_inbound(Self* self, uint32_t from, uint32_t vdisk, uint32_t op,
                                          uint64_t offset, uint64_t length, uint32_t flags,
                                          Bytes& data) {
  auto& st = self->state;
  const RouteTable* routes = st.routes.get();
  if (!accepting(self) || !routes->find(vdisk) || !routes->local(vdisk)) {
    ++st.refused;
    return caf::result<int32_t, Bytes>(int32_t{ESTALE}, Bytes{});
  }
  auto io_op = static_cast<IoOp>(op);
  // (Not a block status: it goes by the data channel.)
  const bool known =
      op <= static_cast<uint32_t>(IoOp::or_write) && io_op != IoOp::block_status;
  if (!known || length > kMaxForwardBytes || data.size() != data_out_bytes(io_op, length))
    return caf::result<int32_t, Bytes>(int32_t{EINVAL}, Bytes{});
  IoRequestPtr request = make_request();
  request->op = io_op;
  request->flags = flags & io_flags::host_settable;
  request->volume = vdisk;
  request->offset = offset;
  request->length = io_op == IoOp::flush ? 0 : length;
  if (is_payload_op(io_op) && length > 0) {
    request->buffer = Buffer::allocate(io_op == IoOp::read ? length : data.size());
    if (!data.empty()) request->buffer->copy_in(0, data.size(), data.data());
  }
  uint64_t id = st.next_id++;
  request->cookie = id;
  request->client = &st.inbound_return;
  auto promise = self->make_response_promise<int32_t, Bytes>();
  st.inbound.emplace(id, promise);
  ++st.served;
  core_for(self, vdisk).submit(std::move(request));
  return promise;
}

void gathered(Self* self, uint64_t id) {
  auto& all = self->state.gatherings;
  auto it = all.find(id);
  if (it == all.end() || --it->second.left > 0) return;
  it->second.promise.deliver(
      it->second.result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  all.erase(it);
}

// Asks every actor of this node to describe itself and answers with the
// list (without their own state), once all have answered or 2 s passed.
caf::result<std::string> describe_node(Self* self) {
  auto& st = self->state;
  uint64_t id = st.next_id++;
  Gathering& g = st.gatherings[id];
  g.promise = self->make_response_promise<std::string>();
  g.result = nlohmann::json::array();
  g.left = st.local_actors.size() + 1;
  auto mine = nlohmann::json::parse(st.probe.answer(self->mailbox().size(), nlohmann::json::object()));
  mine.erase("state");
  g.result.push_back(std::move(mine));
  auto promise = g.promise;
  gathered(self, id);
  for (const auto& [name, actor] : st.local_actors) {
    self->request(actor, std::chrono::seconds(2), inspect_atom::value)
        .then(
            [self, id](std::string& answer) {
              auto row = nlohmann::json::parse(answer, nullptr, false);
              if (row.is_object()) row.erase("state");
              if (auto it = self->state.gatherings.find(id); it != self->state.gatherings.end())
                it->second.result.push_back(std::move(row));
              gathered(self, id);
            },
            [self, id, name = name](caf::error&) {
              if (auto it = self->state.gatherings.find(id); it != self->state.gatherings.end())
                it->second.result.push_back({{"name", name}, {"error", "no answer"}});
              gathered(self, id);
            });
  }
  return promise;
}

// This node's actors and every reachable peer's, by node id.
caf::result<std::string> describe_cluster(Self* self) {
  auto& st = self->state;
  uint64_t id = st.next_id++;
  Gathering& g = st.gatherings[id];
  g.promise = self->make_response_promise<std::string>();
  g.result = nlohmann::json::object();
  std::vector<std::pair<uint32_t, caf::actor>> ask;
  ask.emplace_back(st.self, caf::actor_cast<caf::actor>(self));
  std::vector<uint32_t> unreached;
  for (const auto& [node, peer] : st.peers) {
    if (peer.interconnect) {
      ask.emplace_back(node, peer.interconnect);
    } else {
      g.result[std::to_string(node)] = {{"error", "not reached yet (connecting)"}};
      unreached.push_back(node);
    }
  }
  for (uint32_t node : unreached) connect(self, node);
  g.left = ask.size();
  auto promise = g.promise;
  for (const auto& [node, actor] : ask) {
    std::string key = std::to_string(node);
    self->request(actor, std::chrono::seconds(3), shell_atom::value)
        .then(
            [self, id, key](std::string& rows) {
              if (auto it = self->state.gatherings.find(id); it != self->state.gatherings.end())
                it->second.result[key] = nlohmann::json::parse(rows, nullptr, false);
              gathered(self, id);
            },
            [self, id, key](caf::error&) {
              if (auto it = self->state.gatherings.find(id); it != self->state.gatherings.end())
                it->second.result[key] = {{"error", "no answer"}};
              gathered(self, id);
            });
  }
  return promise;
}

caf::behavior interconnect(Self* self, uint32_t node, const ServiceGate* gate,
                           uint64_t retry_ms, PeerPorts ports,
                           std::shared_ptr<channel::ClusterTunnel> tunnel) {
  auto& st = self->state;
  st.tunnel = std::move(tunnel);
  st.ports = std::move(ports);
  st.self = node;
  st.gate = gate;
  st.retry_ms = retry_ms;
  st.inbound_return.interconnect = caf::actor_cast<caf::actor>(self);
  self->set_down_handler([self](caf::down_msg& down) {
    for (auto& [node, peer] : self->state.peers) {
      if (!peer.interconnect || peer.interconnect.address() != down.source) continue;
      peer.interconnect = caf::actor{};
      spdlog::info("interconnect: lost node {}", node);
      // What was in flight there was never acknowledged: to the next owner.
      std::vector<uint64_t> again;
      for (auto& [id, out] : self->state.outbound)
        if (out.in_flight && out.peer == node) again.push_back(id);
      for (uint64_t id : again) {
        ++self->state.outbound[id].attempt;
        retry_later(self, id, "lost node " + std::to_string(node));
      }
    }
  });
  return guarded_behavior(self, &self->state.probe.name,
      [=](trace_atom, uint32_t n) { self->state.probe.start_trace(n); },
      [=](inspect_atom) {
        auto& s = self->state;
        nlohmann::json peers = nlohmann::json::array();
        for (const auto& [id, p] : s.peers)
          peers.push_back({{"node", id}, {"address", p.address},
                           {"reached", static_cast<bool>(p.interconnect)},
                           {"connecting", p.connecting}, {"last_error", p.last_error}});
        return s.probe.answer(self->mailbox().size(),
                              {{"outbound_in_flight", s.outbound.size()},
                               {"inbound_in_flight", s.inbound.size()},
                               {"forwarded", s.forwarded}, {"served", s.served},
                               {"refused", s.refused}, {"retries", s.retries},
                               {"peers", peers}});
      },
      // The debug shell: this node's actors, or every node's.
      [=](attach_atom, std::vector<std::string>& names, std::vector<caf::actor>& actors) {
        for (size_t i = 0; i < names.size() && i < actors.size(); ++i)
          self->state.local_actors.emplace_back(names[i], actors[i]);
      },
      [=](shell_atom) { return describe_node(self); },
      [=](data_port_atom) -> caf::result<uint16_t, std::string> {
        return {self->state.ports.data_port, self->state.ports.iscsi_portal};
      },
      [=](shell_atom, all_atom) { return describe_cluster(self); },
      // A reset through this node's port, to every peer reached (one that
      // is not, or does not answer in time, misses it: its sessions see no
      // unit attention and keep their tasks), answered once each has ended
      // its sessions' tasks for the unit; and one through a peer's.
      [=](lun_reset_atom, uint32_t vdisk, bool all) -> caf::result<bool> {
        auto promise = self->make_response_promise<bool>();
        auto left = std::make_shared<size_t>(1);  // (one for the loop itself)
        auto one_done = [promise, left]() mutable {
          if (--*left == 0) promise.deliver(true);
        };
        for (const auto& [node, peer] : self->state.peers) {
          if (!peer.interconnect) continue;
          ++*left;
          self->request(peer.interconnect, kPeerResetWait, lun_reset_atom::value, vdisk, all,
                        self->state.self)
              .then([one_done](bool) mutable { one_done(); },
                    [one_done](caf::error&) mutable { one_done(); });
        }
        one_done();
        return promise;
      },
      // Whether every peer reached enforces configuration `version` (one
      // that does not answer in time is not waited for: it is likely out of
      // the cluster, and then serves nothing).
      [=](applied_atom, uint64_t version) -> caf::result<bool> {
        auto promise = self->make_response_promise<bool>();
        auto left = std::make_shared<size_t>(1);
        auto all = std::make_shared<bool>(true);
        auto one_done = [promise, left, all]() mutable {
          if (--*left == 0) promise.deliver(*all);
        };
        for (const auto& [node, peer] : self->state.peers) {
          if (!peer.interconnect) continue;
          ++*left;
          self->request(peer.interconnect, std::chrono::seconds(2), applied_atom::value, version,
                        self->state.self)
              .then(
                  [one_done, all, version](uint64_t applied) mutable {
                    if (applied < version) *all = false;
                    one_done();
                  },
                  [one_done](caf::error&) mutable { one_done(); });
        }
        one_done();
        return promise;
      },
      [=](applied_atom, uint64_t, uint32_t) -> uint64_t {
        auto& ports = self->state.ports;
        return ports.applied_version ? ports.applied_version() : UINT64_MAX;
      },
      [=](lun_reset_atom, uint32_t vdisk, bool all, uint32_t from) -> caf::result<bool> {
        spdlog::info("interconnect: node {} reset {}: unit attentions here too, and the "
                     "sessions' tasks for it end",
                     from, all ? std::string("the target") : "vdisk " + std::to_string(vdisk));
        auto& st = self->state;
        if (!st.ports.on_peer_reset) return true;
        const uint64_t id = st.next_id++;
        auto promise = self->make_response_promise<bool>();
        st.resets.emplace(id, promise);
        st.ports.on_peer_reset(vdisk, all, [me = caf::actor_cast<caf::actor>(self), id] {
          caf::anon_send(me, reset_done_atom::value, id);
        });
        // A drain that never ends (a back end stalled for good) keeps no
        // promise here past the time the resetting node waits for it.
        self->delayed_send(self, kPeerResetWait, reset_done_atom::value, id);
        return promise;
      },
      [=](reset_done_atom, uint64_t id) {
        auto it = self->state.resets.find(id);
        if (it == self->state.resets.end()) return;
        it->second.deliver(true);
        self->state.resets.erase(it);
      },
      // The cores' cache actors (for the partner's copies), and where a
      // core takes requests from other nodes (its atomic facility, above
      // the cache), once they exist.
      [=](attach_atom, std::vector<caf::actor>& cache_actors, std::vector<caf::actor>& tops) {
        for (auto& a : cache_actors) self->state.cache_actors.push_back(a);
        for (auto& a : tops) self->state.cores.push_back(std::make_unique<ActorPort>(a));
      },
      // From a core: copies of its dirty blocks for the partner node.
      [=](mirror_to_atom, uint32_t partner, uint32_t origin, uint32_t vdisk, uint64_t epoch,
          std::vector<uint64_t>& blocks, std::vector<uint64_t>& seqs,
          Bytes& data) -> caf::result<int32_t> {
        Peer& peer = self->state.peers[partner];
        if (!peer.interconnect) {
          connect(self, partner);
          return int32_t{EAGAIN};
        }
        auto promise = self->make_response_promise<int32_t>();
        promise.delegate(peer.interconnect, mirror_atom::value, origin, vdisk, epoch,
                         std::move(blocks), std::move(seqs), std::move(data));
        return promise;
      },
      // From the partner: its copies, for the partition that holds them here.
      [=](mirror_atom, uint32_t origin, uint32_t vdisk, uint64_t epoch,
          std::vector<uint64_t>& blocks, std::vector<uint64_t>& seqs,
          Bytes& data) -> caf::result<int32_t> {
        if (!accepting(self)) return int32_t{ESTALE};
        auto& actors = self->state.cache_actors;
        auto promise = self->make_response_promise<int32_t>();
        promise.delegate(actors[vdisk % actors.size()], mirror_atom::value, origin, vdisk, epoch,
                         std::move(blocks), std::move(seqs), std::move(data));
        return promise;
      },
      [=](unmirror_to_atom, uint32_t partner, uint32_t vdisk,
          std::vector<uint64_t>& blocks, std::vector<uint64_t>& seqs) {
        Peer& peer = self->state.peers[partner];
        if (peer.interconnect)
          self->send(peer.interconnect, unmirror_atom::value, self->state.self, vdisk,
                     std::move(blocks), std::move(seqs));
      },
      [=](unmirror_atom, uint32_t origin, uint32_t vdisk, std::vector<uint64_t>& blocks,
          std::vector<uint64_t>& seqs) {
        auto& actors = self->state.cache_actors;
        if (actors.empty()) return;
        self->send(actors[vdisk % actors.size()], unmirror_atom::value, origin, vdisk,
                   std::move(blocks), std::move(seqs));
      },
      // From a core: a request for a vdisk another node owns.
      [=](io_submit_atom, IoRequestPtr& request) {
        note(self, self->state.probe);
        uint64_t id = self->state.next_id++;
        Outbound& out = self->state.outbound[id];
        out.request = std::move(request);
        out.give_up_ms = monotonic_ms() + self->state.retry_ms;
        dispatch(self, id);
      },
      [=](retry_atom, uint64_t id) { dispatch(self, id); },
      // From another node's interconnect.
      [=](fwd_atom, uint32_t from, uint32_t vdisk, uint32_t op, uint64_t offset,
          uint64_t length, uint32_t flags, Bytes& data) {
        note(self, self->state.probe);
        return serve_inbound(self, from, vdisk, op, offset, length, flags, data);
      },
      // An inbound request done on its core.
      [=](io_done_atom, IoRequestPtr& request) {
        auto it = self->state.inbound.find(request->cookie);
        if (it == self->state.inbound.end()) return;
        Bytes reply;
        if (request->status == 0 && request->op == IoOp::read && request->length > 0) {
          reply.resize(request->length);
          request->buffer->copy_out(request->buffer_offset, request->length, reply.data());
        } else if (request->status == EILSEQ && request->op == IoOp::compare_and_write) {
          reply.resize(sizeof(request->miscompare_at));
          std::memcpy(reply.data(), &request->miscompare_at, sizeof(request->miscompare_at));
        }
        it->second.deliver(int32_t{request->status}, std::move(reply));
        self->state.inbound.erase(it);
      },
      [=](routes_atom, RoutesPtr& routes) { self->state.routes = std::move(routes); },
      [=](cluster_atom, caf::actor& cluster) { self->state.cluster = std::move(cluster); },
      [=](peers_atom, std::vector<uint32_t>& ids, std::vector<std::string>& addresses) {
        auto& peers = self->state.peers;
        for (size_t i = 0; i < ids.size() && i < addresses.size(); ++i) {
          if (ids[i] == self->state.self) continue;
          Peer& p = peers[ids[i]];
          if (p.address != addresses[i]) p.interconnect = caf::actor{};
          p.address = addresses[i];
          // An iSCSI node lists every node's portal: it asks each peer for
          // its own now, not when it first has something to send there.
          if (self->state.ports.on_iscsi_portal && !p.interconnect) connect(self, ids[i]);
        }
      }
  );
}

}  // namespace

caf::actor spawn_interconnect_actor(caf::actor_system& sys, uint32_t self,
                                    const ServiceGate* gate, uint64_t retry_ms,
                                    PeerPorts ports,
                                    std::shared_ptr<channel::ClusterTunnel> tunnel) {
  return sys.spawn<caf::detached>(interconnect, self, gate, retry_ms, std::move(ports),
                                  std::move(tunnel));
}

}  // namespace sve

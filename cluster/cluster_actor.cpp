// The cluster actor: one per node. It owns the node's ClusterHost (protocol
// core, replicated state, RSMs), ticks it every heartbeat interval, carries
// its messages to the other nodes' cluster actors over CAF's middleman, and
// answers the cluster's admin requests once their events commit. Detached:
// every vote and every applied event is fsynced, and no I/O core may wait
// for that.
#include <chrono>
#include <map>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "faults/net_faults.hpp"
#include "actors/spawn.hpp"
#include "hw/port/tcp.hpp"
#include "cluster/audit_log.hpp"
#include "cluster/cluster_view.hpp"
#include "cluster/host/cluster_host.hpp"
#include "io/auth/cluster_key.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

using nlohmann::json;
using cluster::ClusterHost;
using cluster::NodeId;

constexpr auto kRequestTimeout = std::chrono::seconds(15);

struct ClusterActorState {
  static inline const char* name = "cluster";
  std::unique_ptr<ClusterHost> host;
  ClusterActorSetup setup;
  std::map<NodeId, caf::actor> links;  // the heartbeat link of each peer
  // Requests waiting for their event's answer, each with how to deliver it
  // (a JSON line to the admin API, a CommitOutcome to a commit).
  std::map<uint64_t, std::function<void(const json&)>> pending;
  // Answers that came before their request was parked: a lone node commits
  // inside the call that proposes.
  std::map<uint64_t, json> early;
  int gate_state = -1;  // what the gate last said: 0 serving, 1 no quorum, 2 no cluster
  ClusterView view;     // as last pushed to the node
  bool view_pushed = false;
  caf::actor interconnect;  // this node's, for peers that ask
  ActorProbe probe{"cluster", "RSM", -1};
};

std::string error_reply(const std::string& message) {
  return json{{"ok", false}, {"error", message}}.dump();
}

using Self = caf::stateful_actor<ClusterActorState>;

// The heartbeat link of peer `id`, spawned on first use.
caf::actor& link_for(Self* self, NodeId id, const std::string& address) {
  auto& st = self->state;
  auto it = st.links.find(id);
  if (it == st.links.end()) {
    it = st.links
             .emplace(id, spawn_peer_link(self->system(), caf::actor_cast<caf::actor>(self), id,
                                          address, st.setup.tunnel))
             .first;
    self->link_to(it->second);  // links die with the cluster actor
  }
  return it->second;
}

void send_to(Self* self, NodeId to, const std::string& address, std::string bytes) {
  auto& st = self->state;
  NetFaults::Outgoing fault;
  if (st.setup.net_faults) fault = st.setup.net_faults->outgoing(to, monotonic_ms());
  if (fault.drop) return;
  auto& link = link_for(self, to, address);
  if (fault.duplicate)
    self->send(link, cluster_atom::value, st.host->info().uuid, st.setup.self, bytes);
  if (fault.delay_ms)
    self->delayed_send(link, std::chrono::milliseconds(fault.delay_ms), cluster_atom::value,
                       st.host->info().uuid, st.setup.self, std::move(bytes));
  else
    self->send(link, cluster_atom::value, st.host->info().uuid, st.setup.self, std::move(bytes));
}

// Tells the node when who serves, in which generation, or where nodes are
// has changed: before the gate opens on it.
void push_view(Self* self, bool serving) {
  auto& st = self->state;
  if (!st.setup.view_changed) return;
  ClusterView view;
  view.serving = serving;
  if (serving) {
    view.generation = st.host->core().generation().number;
    view.members = st.host->core().members();
  }
  for (const auto& n : st.host->info().nodes) {
    view.node_ids.push_back(n.id);
    view.addresses.push_back(n.address);
  }
  if (st.view_pushed && view == st.view) return;
  st.view = view;
  st.view_pushed = true;
  st.setup.view_changed(st.view);
}

// Runs after every tick and message: the deadline moves with each renewal;
// the reason a host is told changes only with the node's state.
void update_gate(Self* self) {
  auto& st = self->state;
  if (!st.setup.gate) return;
  bool quorum = st.host->has_quorum();
  int state = quorum ? 0 : st.host->in_cluster() ? 1 : 2;
  if (state != st.gate_state) {
    st.gate_state = state;
    std::string node = "node " + std::to_string(st.setup.self);
    // With quorum: what to say if the lease runs out before the next update.
    st.setup.gate->set_why(
        state == 0 ? node + " has no quorum: its lease ran out"
        : state == 1
            ? node + " has no quorum: it serves no I/O until it is back in a cluster with a "
                     "majority"
            : node + " is not in a cluster");
  }
  push_view(self, quorum);
  st.setup.gate->open_until(quorum ? st.host->core().lease_until() : 0);
}

// Parks `deliver` until request `id` is answered (or runs it now, if the
// answer came first); it gets an error reply if none comes in time.
void park(Self* self, uint64_t id, std::function<void(const json&)> deliver) {
  auto& early = self->state.early;
  if (auto it = early.find(id); it != early.end()) {
    json reply = std::move(it->second);
    early.clear();
    deliver(reply);
    return;
  }
  self->state.pending[id] = std::move(deliver);
  self->delayed_send(self, kRequestTimeout, expire_atom::value, id);
  update_gate(self);
}

// The answer of request `id` as the admin API's JSON line.
caf::result<std::string> await(Self* self, Result<uint64_t> id) {
  if (!id) return error_reply(id.error().message);
  auto promise = self->make_response_promise<std::string>();
  park(self, id.value(), [promise](const json& reply) mutable { promise.deliver(reply.dump()); });
  return promise;
}

// The answer of a commit as a value.
CommitOutcome outcome_of(const json& reply) {
  auto flag = [&](const char* key) {
    auto it = reply.is_object() ? reply.find(key) : reply.end();
    return it != reply.end() && it->is_boolean() && it->get<bool>();
  };
  CommitOutcome out;
  if (flag("ok")) {
    out.kind = CommitOutcome::Kind::committed;
  } else if (flag("conflict")) {
    out.kind = CommitOutcome::Kind::conflict;
  } else {
    auto it = reply.is_object() ? reply.find("error") : reply.end();
    out.error = it != reply.end() && it->is_string() ? it->get<std::string>()
                                                      : "the cluster refused the change";
  }
  return out;
}

caf::result<CommitOutcome> await_commit(Self* self, Result<uint64_t> id) {
  if (!id) return CommitOutcome{CommitOutcome::Kind::refused, id.error().message};
  auto promise = self->make_response_promise<CommitOutcome>();
  park(self, id.value(),
       [promise](const json& reply) mutable { promise.deliver(outcome_of(reply)); });
  return promise;
}

caf::result<std::string> admin(Self* self, const std::string& line) {
  auto& host = *self->state.host;
  json request = json::parse(line, nullptr, false);
  if (request.is_discarded() || !request.is_object()) return error_reply("request is not JSON");
  std::string cmd = request.value("cmd", "");
  try {
    if (cmd == "cluster.status")
      return json{{"ok", true}, {"result", host.status()}}.dump();
    if (cmd == "audit.list") {
      if (!host.in_cluster()) return error_reply("this node is not in a cluster");
      return json{{"ok", true}, {"result", audit_json(host.audit_log(), request)}}.dump();
    }
    if (cmd == "node.list") {
      if (!host.in_cluster()) return error_reply("this node is not in a cluster");
      return json{{"ok", true}, {"result", host.node_list()}}.dump();
    }
    if (cmd == "cluster.create") {
      std::string name = request.value("name", "");
      if (name.empty() || name.size() > 63) return error_reply("a cluster needs a name (up to 63 characters)");
      if (!host.core().cluster().empty())  // (host.create says so in its own words)
        return await(self, host.create(name, ClusterModel{}));
      // A new cluster, a new key: only the nodes it adds will hold it.
      if (auto& key = self->state.setup.key)
        if (auto renewed = key->renew(); !renewed) return error_reply(renewed.error().message);
      auto seed = unpack_from_string<ClusterModel>(self->state.setup.seed);
      return await(self, host.create(name, seed.value_or(ClusterModel{})));
    }
    if (cmd == "cluster.join_key") {
      // From the node that is adding this one (node.add): its cluster's
      // key, so that the cluster's links let this node in.
      if (host.in_cluster())
        return error_reply("this node is already in a cluster: it takes no other cluster's key");
      if (!self->state.setup.key) return error_reply("this node keeps no cluster key");
      if (auto installed = self->state.setup.key->install(request.value("key", ""));
          !installed)
        return error_reply(installed.error().message);
      spdlog::info("cluster: took the key of the cluster that is adding this node");
      return json{{"ok", true}}.dump();
    }
    if (cmd == "node.add") {
      std::string address = request.value("address", "");
      if (!parse_address(address)) return error_reply("node address must be HOST:PORT");
      if (!request.contains("id") || !request["id"].is_number_unsigned())
        return error_reply("node add needs --id N");
      return await(self, host.add_node(request["id"].get<NodeId>(), address));
    }
    if (cmd == "node.remove") {
      if (!request.contains("id") || !request["id"].is_number_unsigned())
        return error_reply("node remove needs a node id");
      return await(self, host.remove_node(request["id"].get<NodeId>()));
    }
  } catch (const std::exception& e) {
    return error_reply(std::string("bad request: ") + e.what());
  }
  return error_reply("unknown command '" + cmd + "'");
}

caf::behavior cluster_actor(Self* self, ClusterActorSetup setup) {
  auto& st = self->state;
  st.setup = std::move(setup);
  cluster::ClusterHostOptions options;
  options.self = st.setup.self;
  options.address = st.setup.address;
  options.data_dir = st.setup.data_dir;
  options.quorum_path = st.setup.quorum_path;
  options.core.heartbeat_ms = st.setup.heartbeat_ms;
  options.core.lease_ms = st.setup.lease_ms;
  options.core.keep_entries = st.setup.log_keep;
  // The rest scales with the heartbeat, as in the simulator's defaults.
  options.core.failure_ms = st.setup.heartbeat_ms * 6;
  options.core.settle_ms = st.setup.heartbeat_ms * 3;
  options.core.retransmit_ms = st.setup.heartbeat_ms * 2;
  options.core.form_timeout_ms = std::max<uint64_t>(st.setup.lease_ms, 25 * st.setup.heartbeat_ms);
  options.core.quorum_renew_ms = st.setup.heartbeat_ms * 3;
  options.core.quorum_claim_ms = st.setup.heartbeat_ms * 10;
  options.core.propose_resend_ms = st.setup.heartbeat_ms * 4;
  // Resent until the admin who asked has been told it timed out.
  options.core.propose_give_up_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(kRequestTimeout).count();
  cluster::ClusterHostCallbacks callbacks;
  callbacks.send = [self](NodeId to, const std::string& address, std::string bytes) {
    send_to(self, to, address, std::move(bytes));
  };
  callbacks.reply = [self](uint64_t request, json reply) {
    reply.erase("request");
    auto it = self->state.pending.find(request);
    if (it == self->state.pending.end()) {  // not parked yet, or expired
      if (self->state.early.size() > 64) self->state.early.clear();
      self->state.early[request] = std::move(reply);
      return;
    }
    auto deliver = std::move(it->second);
    self->state.pending.erase(it);
    deliver(reply);
  };
  callbacks.config_changed = [self](const ClusterModel& config) {
    self->state.setup.model_changed(pack_to_string(config));
  };
  callbacks.membership_changed = [self](const ClusterInfo& info) {
    auto& links = self->state.links;
    for (auto it = links.begin(); it != links.end();) {
      const ClusterNodeInfo* n = info.find(it->first);
      if (!n) {  // removed: its link goes
        self->unlink_from(it->second);
        self->send_exit(it->second, caf::exit_reason::user_shutdown);
        it = links.erase(it);
        continue;
      }
      self->send(it->second, peer_atom::value, n->address);
      ++it;
    }
    spdlog::info("cluster {}: {} configured nodes", info.name, info.nodes.size());
  };
  // A heartbeat link that dies (killed, or failed) is dropped, and the next
  // message to its peer starts another: the cluster actor supervises them.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& links = self->state.links;
    for (auto it = links.begin(); it != links.end(); ++it) {
      if (it->second.address() != msg.source) continue;
      spdlog::warn("cluster: the heartbeat link to node {} ended ({}); starting another",
                   it->first, self->system().render(msg.reason));
      links.erase(it);
      return;
    }
    self->quit(msg.reason);  // the node's shutdown (anon_send_exit names us as the source)
  });
  st.host = std::make_unique<ClusterHost>(std::move(options), std::move(callbacks));
  st.host->start();
  update_gate(self);
  self->send(self, tick_atom::value);
  return guarded_behavior(self, &self->state.probe.name,
      [=](trace_atom, uint32_t n) { self->state.probe.start_trace(n); },
      // The debug shell: the heartbeat links, one per peer.
      [=](peer_atom) {
        std::vector<uint32_t> ids;
        std::vector<caf::actor> links;
        for (const auto& [id, link] : self->state.links) {
          ids.push_back(id);
          links.push_back(link);
        }
        return caf::make_message(std::move(ids), std::move(links));
      },
      [=](inspect_atom) {
        auto& s = self->state;
        nlohmann::json links = nlohmann::json::array();
        for (const auto& [peer, link] : s.links) links.push_back(peer);
        return s.probe.answer(self->mailbox().size(),
                              {{"status", s.host->status()}, {"heartbeat_links", links},
                               {"pending_requests", s.pending.size()}});
      },
      [=](tick_atom) {
        note(self, self->state.probe);
        self->state.host->tick();
        update_gate(self);
        self->delayed_send(self, std::chrono::milliseconds(self->state.setup.heartbeat_ms),
                           tick_atom::value);
      },
      [=](cluster_atom, const std::string& cluster, uint32_t from, const std::string& bytes) {
        auto& s = self->state;
        note(self, s.probe);
        if (s.setup.net_faults && s.setup.net_faults->drop_incoming(from, monotonic_ms())) return;
        // The peer reached us: its link may answer on that connection.
        if (auto sender = caf::actor_cast<caf::actor>(self->current_sender())) {
          const ClusterNodeInfo* n = s.host->info().find(from);
          self->send(link_for(self, from, n ? n->address : std::string()), peer_atom::value,
                     sender);
        }
        s.host->receive(from, bytes);
        update_gate(self);
      },
      [=](admin_atom, const std::string& line) { return admin(self, line); },
      // A line for the audit log (the admin router's): proposed, not awaited.
      [=](audit_atom, const std::string& bytes) {
        auto entry = unpack_from_string<AuditEntry>(bytes);
        if (!entry) return;
        auto id = self->state.host->append_audit(*entry);
        if (id) park(self, id.value(), [](const json&) {});
        update_gate(self);
      },
      [=](commit_atom, uint64_t base, const std::string& next) -> caf::result<CommitOutcome> {
        auto config = unpack_from_string<ClusterModel>(next);
        if (!config)
          return CommitOutcome{CommitOutcome::Kind::refused, "internal: model does not decode"};
        return await_commit(self, self->state.host->replace_config(base, *config));
      },
      [=](model_atom) { return pack_to_string(self->state.host->config()); },
      // Peers ask for this node's interconnect; the node sets it.
      [=](interconnect_atom) { return self->state.interconnect; },
      [=](interconnect_atom, caf::actor& ic) { self->state.interconnect = std::move(ic); },
      // This node's interconnect asks for a peer's, through the connection
      // the heartbeats already hold (null where there is none).
      [=](interconnect_atom, uint32_t peer) -> caf::result<caf::actor> {
        auto it = self->state.links.find(peer);
        if (it == self->state.links.end()) return caf::actor{};
        auto promise = self->make_response_promise<caf::actor>();
        promise.delegate(it->second, interconnect_atom::value);
        return promise;
      },
      [=](members_atom) {
        std::vector<uint32_t> ids;
        for (const auto& n : self->state.host->info().nodes) ids.push_back(n.id);
        return ids;
      },
      [=](expire_atom, uint64_t request) {
        auto it = self->state.pending.find(request);
        if (it == self->state.pending.end()) return;
        auto deliver = std::move(it->second);
        self->state.pending.erase(it);
        deliver(json{{"ok", false},
                     {"error", "timed out waiting for the cluster to commit the change (it may "
                               "still commit): is a majority of nodes up?"}});
      }
  );
}

}  // namespace

caf::actor spawn_cluster_actor(caf::actor_system& sys, ClusterActorSetup setup) {
  return sys.spawn<caf::detached>(cluster_actor, std::move(setup));
}

}  // namespace sve

#include "cluster/host/cluster_host.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "cluster/host/cluster_rsms.hpp"
#include "cluster/protocol/codec.hpp"

namespace sve::cluster {

using nlohmann::json;

namespace {

Error no_quorum() {
  return make_error("no quorum: this node is not serving in a cluster with a majority "
                    "(configuration is refused until it is)",
                    EAGAIN);
}

}  // namespace

ClusterHost::ClusterHost(ClusterHostOptions options, ClusterHostCallbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
  env_ = std::make_unique<FileEnv>(
      options_.data_dir, options_.quorum_path, [this](NodeId to, Message m) {
        const ClusterNodeInfo* n = info_.find(to);
        callbacks_.send(to, n ? n->address : std::string(), encode_message(m));
      });
  core_ = std::make_unique<ClusterCore>(options_.self, NodeSet{}, *env_, options_.core);
  core_->on_commit = [this](uint64_t seq, const Entry& e) { on_commit(seq, e); };
  env_->snapshot_ = [this] { return ReplicatedState::encode(state_->state()); };
  env_->restore_ = [this](uint64_t seq, const std::string& bytes) {
    auto copy = ReplicatedState::decode(bytes);
    if (!copy || copy->seq != seq)
      throw std::runtime_error("cluster state snapshot from the boss does not decode");
    spdlog::info("cluster: node {} was behind the log; installed the cluster state at event {}",
                 options_.self, seq);
    state_->restore(*copy);
    dirty_ = true;
  };
  membership_rsm_ = std::make_unique<MembershipRsm>();
  config_rsm_ = std::make_unique<ConfigRsm>();
  audit_rsm_ = std::make_unique<AuditRsm>();
}

ClusterHost::~ClusterHost() = default;

void ClusterHost::build_state() {
  state_ = std::make_unique<ReplicatedState>(
      options_.self, *env_, [this] { return core_->has_quorum(); },
      [this](uint64_t, const Response& r) {
        json body = json::parse(r.body, nullptr, false);
        if (body.is_object()) callbacks_.reply(body.value("request", uint64_t{0}), body);
      });
  state_->add(*membership_rsm_);
  state_->add(*config_rsm_);
  state_->add(*audit_rsm_);
}

void ClusterHost::start() {
  core_->start();
  next_request_ = core_->durable().incarnation << 32;
  build_state();
  state_->recover();
  // Roll forward: committed events the state copies had not taken yet.
  const Durable& d = core_->durable();
  for (uint64_t s = state_->applied() + 1; s <= d.committed; ++s) state_->apply(s, d.log.at(s));
  dirty_ = true;
  settle();
  if (core_->in_cluster())
    spdlog::info("cluster {}: node {} rejoining ({} configured nodes, {} events committed)",
                 info_.name, options_.self, info_.nodes.size(), d.committed);
}

void ClusterHost::on_commit(uint64_t seq, const Entry& entry) {
  state_->apply(seq, entry);
  dirty_ = true;
}

// After each call into the core: publish what committed events changed. A
// membership change reaches the core only now, outside its own call.
void ClusterHost::settle() {
  if (!dirty_) return;
  dirty_ = false;
  const auto& states = state_->state().states;
  auto get = [&](const char* name) {
    auto it = states.find(name);
    return it == states.end() ? std::string() : it->second;
  };
  std::string info_bytes = get("membership");
  if (info_bytes != info_bytes_) {
    info_bytes_ = info_bytes;
    info_ = unpack_from_string<ClusterInfo>(info_bytes).value_or(ClusterInfo{});
    if (!info_.nodes.empty()) {
      NodeSet nodes;
      for (const auto& n : info_.nodes) nodes.push_back(n.id);
      core_->set_nodes(nodes, info_.nodes_seq);
    }
    callbacks_.membership_changed(info_);
    // Removed: it serves nothing from now on (no lease), and keeps its
    // state, so that it can be added again and catch up like any node.
    if (!core_->in_cluster())
      spdlog::warn("node {} was removed from cluster {}: it serves nothing until it is "
                   "added again",
                   options_.self, info_.name);
  }
  std::string config_bytes = get("config");
  if (config_bytes != config_bytes_) {
    config_bytes_ = config_bytes;
    config_ = unpack_from_string<ClusterModel>(config_bytes).value_or(ClusterModel{});
    callbacks_.config_changed(config_);
  }
}

void ClusterHost::tick() {
  core_->tick();
  settle();
}

void ClusterHost::receive(NodeId from, const std::string& bytes) {
  auto message = decode_message(bytes);
  if (!message) {
    spdlog::warn("cluster: undecodable message from node {} ({} bytes) dropped", from,
                 bytes.size());
    return;
  }
  core_->receive(from, *message);
  settle();
}

Result<uint64_t> ClusterHost::propose(ClusterEvent event) {
  event.origin = options_.self;
  event.request = ++next_request_;
  if (!core_->propose(pack_to_string(event))) return no_quorum();
  settle();  // a lone boss commits at once
  return event.request;
}

Result<uint64_t> ClusterHost::create(const std::string& name, ClusterModel initial) {
  if (!core_->cluster().empty())
    return make_error("this node belongs to cluster '" + info_.name +
                          "' (or was removed from it): it cannot found another",
                      EEXIST);
  ClusterInfo info{name, initial.config_uuid, {{options_.self, options_.address}}};
  if (!core_->found(info.uuid)) return make_error("cannot found a cluster here", EINVAL);
  ClusterEvent event;
  event.kind = ClusterEvent::create;
  event.body = pack_to_string(info);
  initial.version = std::max<uint64_t>(initial.version, 1);
  event.body2 = pack_to_string(initial);
  event.origin = options_.self;
  event.request = ++next_request_;
  // The founding node forms its one-node generation within a few ticks;
  // the event waits for it to open.
  core_->queue_until_open(pack_to_string(event));
  spdlog::info("cluster {} ({}) founded on node {}", name, info.uuid, options_.self);
  return event.request;
}

Result<uint64_t> ClusterHost::add_node(NodeId id, const std::string& address) {
  if (!core_->in_cluster()) return make_error("this node is not in a cluster", ENOENT);
  if (id == 0) return make_error("node ids start at 1", EINVAL);
  if (info_.find(id)) return make_error("node " + std::to_string(id) + " is already configured", EEXIST);
  ClusterEvent event;
  event.kind = ClusterEvent::node_add;
  event.node = id;
  event.address = address;
  return propose(std::move(event));
}

Result<uint64_t> ClusterHost::remove_node(NodeId id) {
  if (!core_->in_cluster()) return make_error("this node is not in a cluster", ENOENT);
  if (!info_.find(id)) return make_error("node " + std::to_string(id) + " is not configured", ENOENT);
  for (const auto& g : config_.iogrps)
    if (std::count(g.nodes.begin(), g.nodes.end(), id))
      return make_error("node " + std::to_string(id) + " is in I/O group '" + g.name +
                            "': delete the group (after moving its vdisks) first",
                        EBUSY);
  // What stays of the serving generation must be a majority of it, so that
  // it can form the next generation without the removed node. The
  // membership RSM checks the same against the generation that first
  // ordered the removal.
  NodeSet rest;
  for (NodeId m : core_->members())
    if (m != id) rest.push_back(m);
  if (rest.size() * 2 <= core_->members().size())
    return make_error("removing node " + std::to_string(id) + " would leave " +
                          std::to_string(rest.size()) + " of " +
                          std::to_string(core_->members().size()) +
                          " serving nodes, not a majority",
                      EINVAL);
  ClusterEvent event;
  event.kind = ClusterEvent::node_remove;
  event.node = id;
  return propose(std::move(event));
}

Result<uint64_t> ClusterHost::replace_config(uint64_t base, const ClusterModel& next) {
  if (!core_->in_cluster())
    return make_error("this node is not in a cluster: run 'svectl cluster create NAME' here, "
                      "or 'svectl node add' on a member",
                      ENOENT);
  ClusterEvent event;
  event.kind = ClusterEvent::config_replace;
  event.base = base;
  event.body = pack_to_string(next);
  return propose(std::move(event));
}

Result<uint64_t> ClusterHost::append_audit(const AuditEntry& entry) {
  if (!core_->in_cluster()) return make_error("this node is not in a cluster", ENOENT);
  ClusterEvent event;
  event.kind = ClusterEvent::audit_append;
  event.body = pack_to_string(entry);
  return propose(std::move(event));
}

AuditLog ClusterHost::audit_log() const {
  const auto& states = state_->state().states;
  auto it = states.find("audit");
  if (it == states.end()) return {};
  return unpack_from_string<AuditLog>(it->second).value_or(AuditLog{});
}

json ClusterHost::status() {
  bool quorum = core_->has_quorum();
  json members = json::array();
  if (quorum)
    for (NodeId m : core_->members()) members.push_back(m);
  uint64_t now = env_->now_ms();
  return {{"name", info_.name},
          {"uuid", info_.uuid},
          {"node", options_.self},
          {"in_cluster", core_->in_cluster()},
          {"boss", quorum ? json(core_->generation().boss) : json(nullptr)},
          {"members", members},
          {"quorum", quorum},
          {"committed", core_->committed()},
          {"generation", core_->generation().number},
          {"configured", info_.nodes.size()},
          {"lease_remaining_ms", quorum ? core_->lease_until() - now : 0},
          {"quorum_device", options_.quorum_path.empty() ? json(nullptr)
                                                         : json(options_.quorum_path)}};
}

json ClusterHost::node_list() {
  bool quorum = core_->has_quorum();
  uint64_t now = env_->now_ms();
  const NodeSet& members = core_->members();
  const NodeSet& view = core_->view();
  json out = json::array();
  for (const auto& n : info_.nodes) {
    bool member = quorum && std::count(members.begin(), members.end(), n.id);
    bool heard = std::count(view.begin(), view.end(), n.id) > 0;
    std::string state = member ? "online" : (n.id == options_.self || heard) ? "stalled" : "offline";
    json lease = nullptr;  // a member's lease runs with this node's: same renewals
    if (member) lease = core_->lease_until() - now;
    out.push_back({{"id", n.id},
                   {"address", n.address},
                   {"state", state},
                   {"boss", member && core_->generation().boss == n.id},
                   {"lease_remaining_ms", lease}});
  }
  return out;
}

}  // namespace sve::cluster

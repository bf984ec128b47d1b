#include "cluster/host/cluster_rsms.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cluster/state/cluster_state.hpp"
#include "model/model.hpp"

namespace sve::cluster {

using nlohmann::json;

namespace {

std::string answer(uint64_t request, const json& result) {
  return json{{"request", request}, {"ok", true}, {"result", result}}.dump();
}

std::string refusal(uint64_t request, const std::string& error, json extra = json::object()) {
  extra["request"] = request;
  extra["ok"] = false;
  extra["error"] = error;
  return extra.dump();
}

}  // namespace

void MembershipRsm::apply(uint64_t seq, const Entry& entry, std::string& state,
                          std::vector<Response>& out) {
  auto event = unpack_from_string<ClusterEvent>(entry.payload);
  if (!event) return;
  auto reply = [&](std::string body) { out.push_back({event->origin, std::move(body)}); };
  auto info = unpack_from_string<ClusterInfo>(state);
  switch (event->kind) {
    case ClusterEvent::create: {
      if (info) return reply(refusal(event->request, "the cluster exists"));
      auto created = unpack_from_string<ClusterInfo>(event->body);
      if (!created) return;
      created->nodes_seq = seq;
      state = pack_to_string(*created);
      return reply(answer(event->request, {{"name", created->name}, {"uuid", created->uuid}}));
    }
    case ClusterEvent::node_add: {
      if (!info) return;
      if (info->find(event->node))
        return reply(refusal(event->request,
                             "node " + std::to_string(event->node) + " is already configured"));
      for (const auto& n : info->nodes)
        if (n.address == event->address)
          return reply(refusal(event->request, event->address + " is node " +
                                                   std::to_string(n.id) + "'s address"));
      info->nodes.push_back({event->node, event->address});
      std::sort(info->nodes.begin(), info->nodes.end(),
                [](auto& a, auto& b) { return a.id < b.id; });
      info->nodes_seq = seq;
      state = pack_to_string(*info);
      return reply(answer(event->request, {{"id", event->node}, {"address", event->address}}));
    }
    case ClusterEvent::node_remove: {
      if (!info) return;
      auto it = std::find_if(info->nodes.begin(), info->nodes.end(),
                             [&](auto& n) { return n.id == event->node; });
      if (it == info->nodes.end())
        return reply(refusal(event->request,
                             "node " + std::to_string(event->node) + " is not configured"));
      if (info->nodes.size() == 1)
        return reply(refusal(event->request, "cannot remove the cluster's last node"));
      // The generation that first ordered this must keep a majority without
      // the removed node, which takes no further part, to go on without it.
      size_t staying = 0;
      for (NodeId m : entry.members) staying += m != event->node;
      if (staying * 2 <= entry.members.size())
        return reply(refusal(event->request,
                             "removing node " + std::to_string(event->node) +
                                 " would leave too few of the serving nodes; retry when "
                                 "more are online"));
      info->nodes.erase(it);
      info->nodes_seq = seq;
      state = pack_to_string(*info);
      return reply(answer(event->request, {{"id", event->node}, {"removed", true}}));
    }
  default:
    return;
  }
}

void ConfigRsm::apply(uint64_t, const Entry& entry, std::string& state,
                      std::vector<Response>& out) {
  auto event = unpack_from_string<ClusterEvent>(entry.payload);
  if (!event) return;
  if (event->kind == ClusterEvent::create) {
    if (state.empty()) state = event->body2;
    return;
  }
  if (event->kind != ClusterEvent::config_replace) return;
  auto current = unpack_from_string<ClusterModel>(state);
  auto next = unpack_from_string<ClusterModel>(event->body);
  if (!current || !next) return;
  if (current->version != event->base) {
    out.push_back({event->origin,
                   refusal(event->request, "configuration changed meanwhile",
                           {{"conflict", true}, {"version", current->version}})});
    return;
  }
  next->version = event->base + 1;
  next->config_uuid = current->config_uuid;
  state = pack_to_string(*next);
  out.push_back({event->origin, answer(event->request, {{"version", next->version}})});
}

void AuditRsm::apply(uint64_t, const Entry& entry, std::string& state,
                     std::vector<Response>& out) {
  auto event = unpack_from_string<ClusterEvent>(entry.payload);
  if (!event || event->kind != ClusterEvent::audit_append) return;
  auto line = unpack_from_string<AuditEntry>(event->body);
  if (!line) return;
  AuditLog log = unpack_from_string<AuditLog>(state).value_or(AuditLog{});
  line->seq = log.next++;
  log.entries.push_back(std::move(*line));
  if (log.entries.size() > kAuditKeep)
    log.entries.erase(log.entries.begin(), log.entries.end() - kAuditKeep);
  state = pack_to_string(log);
  out.push_back({event->origin, answer(event->request, {{"seq", log.next - 1}})});
}

}  // namespace sve::cluster

// The debug shell's side in the node: every actor, each asked to describe
// itself; traces; vdisk show's cache figures.
#include "node/node_impl.hpp"

#include "actors/messages.hpp"

namespace sve {

std::vector<std::pair<std::string, caf::actor>> Node::Impl::actor_list() {
  std::vector<std::pair<std::string, caf::actor>> out;
  for (size_t i = 0; i < cores.size(); ++i) {
    for (const auto& [kind, actor] : cores[i].actors())
      out.emplace_back(kind + "/" + std::to_string(i), actor);
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

// How each node's host ports serve the vdisk, as this node sees it (the
// states SCSI's ALUA reports): a standalone node's, itself, optimized.
// While its gate is closed this node's own state is what its iSCSI port
// says (IscsiConnection::closed_state): transitioning, then unavailable.
nlohmann::json Node::Impl::paths_json(uint32_t vdisk) {
  std::shared_ptr<const HostPaths> paths;
  {
    std::lock_guard lock(routes_mu);
    paths = host_paths;
  }
  nlohmann::json out = nlohmann::json::array();
  const std::vector<NodePath>* found = paths ? paths->find(vdisk) : nullptr;
  if (!found) {
    out.push_back({{"node", paths ? paths->self : 0u},
                   {"state", path_state_name(PathState::optimized)},
                   {"preferred", true}});
    return out;
  }
  const bool closed = options.cluster && !gate.open();
  for (const NodePath& p : *found) {
    PathState state = p.state;
    if (closed && p.node == paths->self)
      state = gate.closed_for_ms() < between_generations_ms() ? PathState::transitioning
                                                              : PathState::unavailable;
    out.push_back({{"node", p.node}, {"state", path_state_name(state)},
                   {"preferred", p.preferred}});
  }
  return out;
}

// vdisk show: the configuration's answer, with the vdisk's cache figures
// and its paths.
std::string Node::Impl::show_vdisk(const std::string& line) {
  std::string reply = call_config(line);
  auto answer = nlohmann::json::parse(reply, nullptr, false);
  if (answer.is_discarded() || !answer.value("ok", false)) return reply;
  try {
    auto& result = answer["result"];
    result["cache"] = cache_json(result.value("id", uint32_t{0}));
    result["paths"] = paths_json(result.value("id", uint32_t{0}));
    if (result.value("thin", false)) result["thin_usage"] = thin_json(result.value("id", uint32_t{0}));
  } catch (const std::exception& e) {
    answer["result"]["cache"] = {{"error", e.what()}};
  }
  return answer.dump();
}

}  // namespace sve

// The admin API of the I/O process: each request, checked whole, goes to
// whoever answers it (the configuration or cluster actor, the chaos
// monkey, the debug shell, the node's own figures).
#include "node/node_impl.hpp"

#include <unistd.h>

#include "actors/messages.hpp"
#include "admin/admin_schema.hpp"

namespace sve {

namespace {

// An admin request (a JSON line) to `actor`, which answers every one.
std::string ask(caf::actor_system& sys, const caf::actor& actor, const std::string& line,
                const char* who) {
  caf::scoped_actor self{sys};
  std::string reply;
  self->request(actor, caf::infinite, admin_atom::value, line)
      .receive([&](std::string& r) { reply = std::move(r); },
               [&](caf::error& e) {
                 reply = nlohmann::json{{"ok", false},
                                        {"error", std::string(who) + ": " + sys.render(e)}}
                             .dump();
               });
  return reply;
}

}  // namespace

std::string Node::Impl::call_config(const std::string& line) {
  return ask(*sys, config_actor, line, "config actor");
}

std::string Node::Impl::call_cluster(const std::string& line) {
  if (!cluster_actor)
    return nlohmann::json{{"ok", false},
                          {"error", "this node was started without --cluster: it stands alone"}}
        .dump();
  return ask(*sys, cluster_actor, line, "cluster actor");
}

// Data-path statistics are the node's own; cluster commands go to the
// cluster actor; everything else is configuration.
std::string Node::Impl::route_admin(Node& node, const std::string& line) {
  // Checked whole before anything reads it (the configuration process did
  // too; this process also runs alone).
  auto parsed = parse_admin_request(line);
  if (!parsed) return admin_error(parsed.error().message);
  const nlohmann::json& request = *parsed;
  std::string cmd = admin_command(request);
  if (cmd.rfind("cluster.", 0) == 0 || cmd == "node.add" || cmd == "node.remove" ||
      cmd == "node.list")
    return call_cluster(line);
  if (cmd == "node.stats" || cmd == "node.show") {
    try {
      auto result = cmd == "node.stats" ? node.io_stats() : cache_json(std::nullopt);
      return nlohmann::json{{"ok", true}, {"result", result}}.dump();
    } catch (const std::exception& e) {
      return nlohmann::json{{"ok", false}, {"error", e.what()}}.dump();
    }
  }
  if (cmd == "vdisk.show") return show_vdisk(line);
  if (cmd == "fcmap.show" || cmd == "fcmap.list") return show_fcmaps(line, cmd == "fcmap.list");
  try {
    if (cmd == "vdisk.check" || cmd == "pool.check") return check_thin(request);
    if (cmd == "pool.list") return list_pools(line);
  } catch (const std::exception& e) {
    return admin_error(e.what());
  }
  if (cmd == "daemon.status")  // run alone (--single-process): no configuration process
    return nlohmann::json{{"ok", true},
                          {"result",
                           {{"supervised", false},
                            {"nbd", options.nbd.to_string()},
                            {"io_pid", ::getpid()},
                            {"io_serving", true},
                            {"restarts", 0}}}}
        .dump();
  if (cmd.rfind("chaos.", 0) == 0) {
    if (!options.enable_chaos)
      return admin_error("the chaos monkey is off on this node: start sved with --enable-chaos "
                         "(test clusters only)");
    return ask(*sys, chaos_actor, line, "chaos monkey");
  }
  if (cmd.rfind("shell.", 0) == 0) return shell(request);
  return call_config(line);
}

}  // namespace sve

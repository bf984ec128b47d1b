// The admin API of the I/O process: each request, checked whole, goes to
// whoever answers it (the configuration or cluster actor, the chaos
// monkey, the debug shell, the node's own figures).
#include "node/node_impl.hpp"

#include <unistd.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "admin/admin_auth.hpp"
#include "admin/admin_client.hpp"
#include "admin/admin_roles.hpp"
#include "admin/admin_schema.hpp"
#include "cluster/audit_log.hpp"
#include "model/host_access.hpp"

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

uint64_t unix_now() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

// docs/security.md: no users, only loopback clients; users, every command
// carries a user's password or a session token, and the user's role must
// allow the command (anyone may change their own password).
std::string Node::Impl::admit(nlohmann::json& request, const std::string& peer,
                              std::string& who, std::string& from) {
  // A supervised node's requests all come through its configuration
  // process, which writes in where each came from; alone, the socket says.
  from = peer;
  if (options.supervised && request.contains("from")) from = request["from"].get<std::string>();
  nlohmann::json auth = request.contains("auth") ? request["auth"] : nlohmann::json();
  request.erase("auth");
  request.erase("from");
  std::vector<UserConfig> users;
  std::string key;
  {
    std::lock_guard lock(routes_mu);
    users = routed_config.users;
    key = routed_config.token_key;
  }
  std::string cmd = admin_command(request);
  if (users.empty()) {
    who = "a loopback client (" + from + ")";
    if (is_loopback(from)) return {};
    // A new node takes the key of the first cluster that adds it, from
    // wherever that cluster is (docs/security.md): it has nothing yet to
    // protect, and the cluster actor refuses once it is in a cluster.
    who = "the cluster adding this node (" + from + ")";
    if (cmd == "cluster.join_key") return {};
    who = from;
    return "no administrator exists yet, so only clients on the node itself (loopback) may "
           "send commands: create the first with svectl user create NAME --role securityadmin "
           "there";
  }
  auto user_of = [&](const std::string& name) -> const UserConfig* {
    for (const auto& u : users)
      if (u.name == name) return &u;
    return nullptr;
  };
  const UserConfig* user = nullptr;
  if (auth.is_object() && auth.contains("token")) {
    auto name = check_token(key, auth["token"].get<std::string>(), unix_now(),
                            [&](const std::string& n) -> std::optional<std::string> {
                              const UserConfig* u = user_of(n);
                              if (!u) return std::nullopt;
                              return u->password_hash;
                            });
    who = from;
    if (!name) return "the session token is not valid (expired, or its user's password changed): "
                      "svectl login again";
    user = user_of(*name);
  } else if (auth.is_object() && auth.contains("user")) {
    std::string name = auth["user"].get<std::string>();
    user = user_of(name);
    who = "'" + name + "' from " + from;
    // Locked out: refused before the password is looked at, so guessing
    // on learns nothing (a name that does not exist locks out the same).
    uint64_t now = unix_now();
    if (auto until = logins.locked_until(name, from, now))
      return "too many failed logins as '" + name + "' from " + from + ": locked for " +
             std::to_string(*until - now) + " more seconds";
    // (A user that does not exist costs the same time as a wrong password.)
    bool good = verify_password(user ? user->password_hash : users.front().password_hash,
                                auth.value("password", "")) &&
                user;
    if (!good) {
      logins.failed(name, from, now);
      return "wrong user name or password";
    }
    logins.succeeded(name, from);
  } else {
    who = from;
    return "this cluster has administrators: log in (svectl login --user NAME, or --user NAME "
           "with SVE_PASSWORD or a prompt)";
  }
  if (!user) return "the session token's user is gone";
  who = "'" + user->name + "' (" + user->role + ") from " + from;
  auto role = parse_role(user->role);
  bool own_password = cmd == "user.passwd" && request.value("name", "") == user->name;
  if (!role || !(role_allows(*role, cmd) || own_password))
    return "user '" + user->name + "' (" + user->role + ") may not run " + cmd;
  if (cmd == "session.login") request["user"] = user->name;  // (whose token it makes)
  return {};
}

std::string Node::Impl::login(const nlohmann::json& request, const std::string& who) {
  std::string name = request.value("user", "");
  std::lock_guard lock(routes_mu);
  const UserConfig* u = routed_config.find_user(name);
  if (!u) return admin_error("log in as a user: this cluster has no administrators yet (" + who + ")");
  uint64_t expires = unix_now() + kTokenSeconds;
  return nlohmann::json{{"ok", true},
                        {"result",
                         {{"user", u->name},
                          {"role", u->role},
                          {"token", make_token(routed_config.token_key, u->name,
                                               u->password_hash, expires)},
                          {"expires", expires}}}}
      .dump();
}

// node.add: the new node gets the cluster key at its admin API first, so
// that the cluster's links let it in once it is a member. Empty, or why
// it could not.
std::string Node::Impl::hand_key(const nlohmann::json& request) {
  if (!cluster_key) return "this node was started without --cluster: it stands alone";
  std::string at = request.value("node_admin", "");
  auto address = parse_address(at);
  if (!address) return "--node-admin must be the new node's admin API, HOST:PORT";
  nlohmann::json hand{{"cmd", "cluster.join_key"}, {"key", cluster_key->hex()}};
  auto answer = admin_call(*address, hand, 10000);
  if (!answer)
    return "cannot hand the cluster key to the new node at " + at + ": " +
           answer.error().message;
  if (!answer->value("ok", false))
    return "the new node at " + at + " did not take the cluster key: " +
           answer->value("error", std::string("no reason given"));
  return {};
}

// cluster.create --first-user: the cluster, then its first administrator
// (a securityadmin), so that from its first moment it has one and its admin
// API stops taking commands from anyone on the node itself.
std::string Node::Impl::create_cluster(const nlohmann::json& request) {
  if (!request.contains("password"))
    return admin_error("the first user needs a password (--password, or SVE_NEW_PASSWORD)");
  nlohmann::json create = request;
  create.erase("first_user");
  create.erase("password");
  std::string created = call_cluster(create.dump());
  auto answer = nlohmann::json::parse(created, nullptr, false);
  if (!answer.is_object() || !answer.value("ok", false)) return created;
  nlohmann::json user{{"cmd", "user.create"}, {"name", request["first_user"]},
                      {"role", "securityadmin"}, {"password", request["password"]}};
  // The configuration actor hears of the new cluster's model from the
  // cluster actor a moment after this answer: it gets it here first, from
  // the sender of the request that follows, so in order.
  caf::scoped_actor self{*sys};
  std::string model;
  self->request(cluster_actor, std::chrono::seconds(10), model_atom::value)
      .receive([&](std::string& bytes) { model = std::move(bytes); }, [](caf::error&) {});
  if (!model.empty()) self->send(config_actor, model_atom::value, model);
  std::string reply = admin_error("the configuration actor did not answer");
  self->request(config_actor, caf::infinite, admin_atom::value, user.dump())
      .receive([&](std::string& r) { reply = std::move(r); }, [](caf::error&) {});
  auto made = nlohmann::json::parse(reply, nullptr, false);
  if (!made.is_object() || !made.value("ok", false))
    return admin_error("cluster " + request.value("name", std::string()) +
                       " was created, but not its first user: " +
                       (made.is_object() ? made.value("error", std::string("no answer"))
                                         : std::string("no answer")) +
                       " (svectl user create makes one)");
  answer["result"]["first_user"] = request["first_user"];
  return answer.dump();
}

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
std::string Node::Impl::route_admin(Node& node, const std::string& given,
                                    const std::string& peer, bool trusted) {
  // Checked whole before anything reads it (the configuration process did
  // too; this process also runs alone).
  auto parsed = parse_admin_request(given);
  if (!parsed) return admin_error(parsed.error().message);
  nlohmann::json& request = *parsed;
  std::string cmd = admin_command(request);
  std::string who = "the node itself", from = peer;
  if (!trusted) {
    if (std::string refused = admit(request, peer, who, from); !refused.empty()) {
      spdlog::warn("admin: refused {} from {}: {}", cmd, who, refused);
      audit(who, from, request, false, refused);
      // (denied: not let in at all, which the REST API answers with 403)
      auto reply = nlohmann::json::parse(admin_error(refused));
      reply["denied"] = true;
      return reply.dump();
    }
  } else {
    request.erase("auth");
    request.erase("from");
  }
  if (cmd == "user.whoami") return nlohmann::json{{"ok", true}, {"result", {{"who", who}}}}.dump();
  if (cmd == "session.login") return login(request, who);
  std::string reply = route_admitted(node, request);
  if (!trusted && !reads_only(cmd)) {
    auto answer = nlohmann::json::parse(reply, nullptr, false);
    bool ok = answer.is_object() && answer.value("ok", false);
    audit(who, from, request, ok,
          ok ? std::string("ok") : answer.is_object() ? answer.value("error", "") : reply);
  }
  return reply;
}

// Who changed what, and who was refused (docs/security.md, "Audit log"):
// a line in the node's log, and an entry in the cluster's replicated audit
// log (a node alone: DATA_DIR/audit.log). Secrets are masked. Refusals are
// recorded at most kAuditRefusalsPerSecond a second (a flood of failed
// logins does not flood the cluster's log); the next entry says how many
// were left out.
void Node::Impl::audit(const std::string& who, const std::string& from,
                       const nlohmann::json& request, bool ok, const std::string& result) {
  nlohmann::json shown = request;
  for (const char* secret : {"password", "secret", "key"})
    if (shown.contains(secret)) shown[secret] = "***";
  std::string command = shown.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (ok) spdlog::info("audit: {} ran {}: ok", who, command);
  else spdlog::info("audit: {} ran {}: refused: {}", who, command, result);
  AuditEntry entry;
  entry.time_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  entry.node = options.cluster ? options.node_id : 0;
  entry.who = who;
  entry.from = from;
  entry.command = std::move(command);
  entry.ok = ok;
  entry.result = result;
  {
    std::lock_guard lock(audit_mu);
    uint64_t second = entry.time_ms / 1000;
    if (second != audit_second) {
      audit_second = second;
      audit_refusals = 0;
    }
    if (!ok && ++audit_refusals > kAuditRefusalsPerSecond) {
      ++audit_suppressed;
      return;
    }
    entry.suppressed = std::exchange(audit_suppressed, 0);
  }
  if (cluster_actor) caf::anon_send(cluster_actor, audit_atom::value, pack_to_string(entry));
  else if (audit_file) audit_file->append(std::move(entry));
}

// An admitted request (without its credentials) to whoever answers it.
std::string Node::Impl::route_admitted(Node& node, const nlohmann::json& request) {
  const std::string cmd = admin_command(request);
  const std::string line = request.dump();
  if (cmd == "node.add") {
    if (std::string refused = hand_key(request); !refused.empty()) return admin_error(refused);
    return call_cluster(line);
  }
  if (cmd == "cluster.create" && request.contains("first_user")) return create_cluster(request);
  if (cmd.rfind("cluster.", 0) == 0 || cmd == "node.remove" || cmd == "node.list")
    return call_cluster(line);
  if (cmd == "audit.list") {
    if (cluster_actor) return call_cluster(line);
    if (!audit_file) return admin_error("this node keeps no audit log");
    return nlohmann::json{{"ok", true}, {"result", audit_json(audit_file->read(), request)}}.dump();
  }
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
  if (cmd == "vdisk.clear-reservations") return clear_reservations(line);
  return call_config(line);
}

}  // namespace sve

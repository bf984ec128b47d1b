// Who may run which admin command (admin/admin_roles.hpp).
#include "admin/admin_roles.hpp"

#include <array>
#include <string_view>

namespace sve {
namespace {

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}
bool starts_with(std::string_view s, std::string_view head) { return s.substr(0, head.size()) == head; }

// What changes nothing and shows no secret: listings, shows, figures,
// checks. (Not the debug shell: a trace shows the messages actors get,
// among them admin lines with passwords and model changes with the token
// key.)
bool reads_only_view(std::string_view cmd) {
  static constexpr std::array<std::string_view, 9> kReads = {
      "node.stats", "node.show",    "cluster.status", "daemon.status", "vdisk.check",
      "pool.check", "chaos.report", "session.login",  "user.whoami"};
  for (auto r : kReads)
    if (cmd == r) return true;
  return ends_with(cmd, ".list") || ends_with(cmd, ".show");
}

bool copy_service(std::string_view cmd) {
  static constexpr std::array<std::string_view, 6> kCopies = {
      "fcmap.prepare",        "fcmap.start",        "fcmap.stop",
      "fcconsistgrp.prepare", "fcconsistgrp.start", "fcconsistgrp.stop"};
  for (auto c : kCopies)
    if (cmd == c) return true;
  return false;
}

// Users, hosts and their secrets, the cluster key, and the debug shell
// (which can see them): the security administrator's.
bool security(std::string_view cmd) {
  return (starts_with(cmd, "user.") && cmd != "user.whoami") || cmd == "cluster.join_key" ||
         (starts_with(cmd, "host.") && !reads_only_view(cmd)) || starts_with(cmd, "shell.");
}

}  // namespace

bool reads_only(const std::string& cmd) { return reads_only_view(cmd); }

std::optional<Role> parse_role(const std::string& text) {
  for (Role r : {Role::monitor, Role::copyoperator, Role::administrator, Role::securityadmin})
    if (text == to_string(r)) return r;
  return std::nullopt;
}

const char* to_string(Role role) {
  switch (role) {
    case Role::monitor: return "monitor";
    case Role::copyoperator: return "copyoperator";
    case Role::administrator: return "administrator";
    case Role::securityadmin: return "securityadmin";
  }
  return "?";
}

bool role_allows(Role role, const std::string& cmd) {
  // (user.list shows who may do what: the security administrator's too.)
  if (cmd == "user.list") return role == Role::securityadmin;
  // (The audit log tells who did what from where: not for monitors.)
  if (cmd == "audit.list") return role == Role::securityadmin || role == Role::administrator;
  if (reads_only_view(cmd)) return true;
  switch (role) {
    case Role::monitor: return false;
    case Role::copyoperator: return copy_service(cmd);
    case Role::administrator: return !security(cmd);
    case Role::securityadmin: return true;
  }
  return false;
}

}  // namespace sve

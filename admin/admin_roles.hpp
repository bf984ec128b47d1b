#pragma once
// Who may run which admin command (docs/security.md): SVC's user groups as
// roles. securityadmin: everything, users, hosts and the debug shell
// included; administrator: all configuration but users and hosts (it maps
// vdisks to hosts that exist); copyoperator: what a monitor may, and
// preparing, starting and stopping point-in-time copies; monitor: what
// only reads.
#include <optional>
#include <string>

namespace sve {

enum class Role { monitor, copyoperator, administrator, securityadmin };

std::optional<Role> parse_role(const std::string& text);
const char* to_string(Role role);

// Whether `role` may run `cmd` (a command of the admin schema).
bool role_allows(Role role, const std::string& cmd);
// Whether `cmd` only reads (every role may run it).
bool reads_only(const std::string& cmd);

}  // namespace sve

// Administrators (docs/security.md): the admin commands that make, list,
// delete them and change their passwords. Passwords are hashed here, before
// the change is committed: the model (and every node's copy of it) only
// ever holds the hash.
#include "admin/admin_auth.hpp"
#include "cluster/config_args.hpp"
#include "cluster/config_service.hpp"
#include "model/user_edits.hpp"

namespace sve {

using nlohmann::json;
using namespace config_args;

Result<json> ConfigService::user_command(const std::string& cmd, const json& args) {
  if (cmd == "user.list") {
    json out = json::array();
    for (const auto& u : config_.users) out.push_back({{"name", u.name}, {"role", u.role}});
    return out;
  }
  auto name = get_name(args, "name");
  if (!name) return name.error();
  std::string hash;
  if (cmd == "user.create" || cmd == "user.passwd") {
    auto password = get_string(args, "password");
    if (!password) return password.error();
    auto hashed = hash_password(password.value());
    if (!hashed) return hashed.error();
    hash = hashed.value();
  }
  std::optional<UserConfig> after;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    Result<UserConfig> r = bad("unknown command '" + cmd + "'");
    if (cmd == "user.create") {
      auto role = get_string(args, "role");
      if (!role) return role.error();
      r = create_user(next, name.value(), role.value(), hash,
                      next.token_key.empty() ? new_token_key() : std::string());
    } else if (cmd == "user.passwd") {
      r = set_password(next, name.value(), hash);
    } else if (cmd == "user.delete") {
      return delete_user(next, name.value());
    }
    if (!r) return r.error();
    after = r.value();
    return ok_status();
  });
  if (!st) return st.error();
  if (!after) return json{{"name", name.value()}, {"deleted", true}};
  return json{{"name", after->name}, {"role", after->role}};
}

}  // namespace sve

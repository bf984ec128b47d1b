// Administrators in the model (model/user_edits.hpp).
#include "model/user_edits.hpp"

#include <algorithm>
#include <cerrno>

#include "admin/admin_roles.hpp"

namespace sve {
namespace {

Error bad(std::string message) { return make_error(std::move(message), EINVAL); }

size_t security_admins(const ClusterModel& model) {
  return static_cast<size_t>(std::count_if(model.users.begin(), model.users.end(), [](const auto& u) {
    return u.role == to_string(Role::securityadmin);
  }));
}

}  // namespace

Result<UserConfig> create_user(ClusterModel& model, const std::string& name,
                               const std::string& role, const std::string& password_hash,
                               const std::string& token_key) {
  if (!parse_role(role))
    return bad("no role '" + role + "': securityadmin, administrator, copyoperator or monitor");
  if (model.find_user(name)) return bad("user '" + name + "' exists");
  if (model.users.size() >= kMaxUsers)
    return make_error("the cluster has " + std::to_string(kMaxUsers) + " users, the most it may",
                      ENOSPC);
  if (model.users.empty() && role != to_string(Role::securityadmin))
    return bad("the first user must be a securityadmin (someone must manage the users)");
  if (password_hash.empty()) return bad("a user needs a password");
  if (model.token_key.empty()) {
    if (token_key.empty()) return bad("no token key");
    model.token_key = token_key;
  }
  UserConfig u;
  u.id = model.next_id++;
  u.name = name;
  u.role = role;
  u.password_hash = password_hash;
  model.users.push_back(u);
  return u;
}

Status delete_user(ClusterModel& model, const std::string& name) {
  auto it = std::find_if(model.users.begin(), model.users.end(),
                         [&](const UserConfig& u) { return u.name == name; });
  if (it == model.users.end()) return bad("no user '" + name + "'");
  if (it->role == to_string(Role::securityadmin) && security_admins(model) == 1)
    return make_error("user '" + name + "' is the last securityadmin: make another first", EBUSY);
  model.users.erase(it);
  return ok_status();
}

Result<UserConfig> set_password(ClusterModel& model, const std::string& name,
                                const std::string& password_hash) {
  auto it = std::find_if(model.users.begin(), model.users.end(),
                         [&](const UserConfig& u) { return u.name == name; });
  if (it == model.users.end()) return bad("no user '" + name + "'");
  if (password_hash.empty()) return bad("a user needs a password");
  it->password_hash = password_hash;
  return *it;
}

}  // namespace sve

#pragma once
// Administrators in the model (SVC's mkuser, rmuser, chuser; docs/security.md):
// pure edits as model/edits.hpp's. Passwords arrive hashed.
#include <string>

#include "model/model.hpp"
#include "util/result.hpp"

namespace sve {

inline constexpr size_t kMaxUsers = 400;  // SVC's limit

// The first user must be a securityadmin (someone must manage users); it
// brings the cluster's token key (`token_key`, made by the caller).
Result<UserConfig> create_user(ClusterModel& model, const std::string& name,
                               const std::string& role, const std::string& password_hash,
                               const std::string& token_key);
// The last securityadmin stays.
Status delete_user(ClusterModel& model, const std::string& name);
Result<UserConfig> set_password(ClusterModel& model, const std::string& name,
                                const std::string& password_hash);

}  // namespace sve

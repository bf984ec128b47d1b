#include "admin/login_guard.hpp"

#include <algorithm>

namespace sve {

std::optional<uint64_t> LoginGuard::locked_until(const std::string& user,
                                                 const std::string& address, uint64_t now) {
  std::lock_guard lock(mu_);
  auto it = records_.find({user, address});
  if (it == records_.end() || it->second.locked_until == 0) return std::nullopt;
  if (now >= it->second.locked_until) {
    records_.erase(it);  // served its time: a fresh count
    return std::nullopt;
  }
  return it->second.locked_until;
}

void LoginGuard::failed(const std::string& user, const std::string& address, uint64_t now) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(user, address);
  if (!records_.count(key) && records_.size() >= kMaxTracked) {
    // Forget the pair that failed longest ago (a lock still running is
    // kept over one that is only counting, where there is a choice).
    auto oldest = std::min_element(records_.begin(), records_.end(), [](auto& a, auto& b) {
      bool a_locked = a.second.locked_until != 0, b_locked = b.second.locked_until != 0;
      if (a_locked != b_locked) return !a_locked;
      return a.second.last < b.second.last;
    });
    records_.erase(oldest);
  }
  Record& r = records_[key];
  r.last = now;
  if (++r.failures >= kMaxFailedLogins && r.locked_until == 0) r.locked_until = now + kLockoutSeconds;
}

void LoginGuard::succeeded(const std::string& user, const std::string& address) {
  std::lock_guard lock(mu_);
  records_.erase({user, address});
}

size_t LoginGuard::tracked() {
  std::lock_guard lock(mu_);
  return records_.size();
}

}  // namespace sve

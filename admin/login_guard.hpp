#pragma once
// Failed logins lock a user out, from the address they came from: after
// kMaxFailedLogins wrong passwords in a row for one user name from one
// client address, that pair is refused (right password or not) for
// kLockoutSeconds, as SVC locks a user after its maximum failed logins.
// Keyed by address as well as name so that someone guessing from one
// place cannot lock the administrator out everywhere. A login that
// succeeds clears its pair. One node's memory, bounded: beyond kMaxTracked
// pairs the oldest is forgotten. Thread-safe.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace sve {

inline constexpr uint32_t kMaxFailedLogins = 5;
inline constexpr uint64_t kLockoutSeconds = 300;
inline constexpr size_t kMaxTracked = 4096;

class LoginGuard {
 public:
  // Until when (unix seconds) `user` from `address` is locked out, if it is
  // at `now`.
  std::optional<uint64_t> locked_until(const std::string& user, const std::string& address,
                                       uint64_t now);
  void failed(const std::string& user, const std::string& address, uint64_t now);
  void succeeded(const std::string& user, const std::string& address);
  size_t tracked();

 private:
  struct Record {
    uint32_t failures = 0;
    uint64_t last = 0;          // the latest failure
    uint64_t locked_until = 0;  // 0: not locked
  };
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Record> records_;
};

}  // namespace sve

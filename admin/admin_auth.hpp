#pragma once
// Administrators' credentials (docs/security.md), with libsodium: passwords
// kept only as a salted slow hash (Argon2id, crypto_pwhash_str), and session
// tokens that name a user and an expiry under an HMAC-SHA256 keyed by the
// cluster's token key. A token also covers the user's password hash, so a
// new password (or deleting the user) ends every token it had.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "util/result.hpp"

namespace sve {

inline constexpr size_t kMinPasswordBytes = 8;
inline constexpr size_t kMaxPasswordBytes = 1024;
inline constexpr uint64_t kTokenSeconds = 24 * 3600;

Result<std::string> hash_password(const std::string& password);
bool verify_password(const std::string& hash, const std::string& password);

// 32 random bytes, as hex: a cluster's token key.
std::string new_token_key();

std::string make_token(const std::string& key_hex, const std::string& user,
                       const std::string& password_hash, uint64_t expires_unix);
// The user a token names, if its MAC holds under `key_hex` with that user's
// password hash now (`password_hash_of`: none for a user that is gone) and
// it has not expired at `now_unix`.
std::optional<std::string> check_token(
    const std::string& key_hex, const std::string& token, uint64_t now_unix,
    const std::function<std::optional<std::string>(const std::string&)>& password_hash_of);

}  // namespace sve

// Administrators' credentials with libsodium (admin/admin_auth.hpp).
#include "admin/admin_auth.hpp"

#include <sodium.h>

#include <cerrno>
#include <vector>

namespace sve {
namespace {

bool ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

std::string to_hex(const unsigned char* data, size_t size) {
  std::string out(size * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, size);
  out.pop_back();
  return out;
}

std::optional<std::vector<unsigned char>> from_hex(const std::string& hex) {
  std::vector<unsigned char> out(hex.size() / 2 + 1);
  size_t got = 0;
  if (sodium_hex2bin(out.data(), out.size(), hex.c_str(), hex.size(), nullptr, &got, nullptr) != 0 ||
      got * 2 != hex.size())
    return std::nullopt;
  out.resize(got);
  return out;
}

std::string mac(const std::vector<unsigned char>& key, const std::string& text) {
  unsigned char out[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key.data(), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(text.data()),
                                text.size());
  crypto_auth_hmacsha256_final(&st, out);
  return to_hex(out, sizeof out);
}

std::string signed_text(const std::string& user, uint64_t expires, const std::string& hash) {
  return "sve1:" + user + ":" + std::to_string(expires) + ":" + hash;
}

}  // namespace

Result<std::string> hash_password(const std::string& password) {
  if (!ready()) return make_error("libsodium did not start", EIO);
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes)
    return make_error("a password is " + std::to_string(kMinPasswordBytes) + " to " +
                          std::to_string(kMaxPasswordBytes) + " bytes",
                      EINVAL);
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return make_error("not enough memory to hash a password", ENOMEM);
  return std::string(out);
}

bool verify_password(const std::string& hash, const std::string& password) {
  if (!ready() || hash.empty() || hash.size() >= crypto_pwhash_STRBYTES ||
      password.size() > kMaxPasswordBytes)
    return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::string new_token_key() {
  ready();
  unsigned char key[32];
  randombytes_buf(key, sizeof key);
  return to_hex(key, sizeof key);
}

std::string make_token(const std::string& key_hex, const std::string& user,
                       const std::string& password_hash, uint64_t expires_unix) {
  auto key = from_hex(key_hex);
  if (!ready() || !key) return {};
  return "sve1:" + user + ":" + std::to_string(expires_unix) + ":" +
         mac(*key, signed_text(user, expires_unix, password_hash));
}

std::optional<std::string> check_token(
    const std::string& key_hex, const std::string& token, uint64_t now_unix,
    const std::function<std::optional<std::string>(const std::string&)>& password_hash_of) {
  auto key = from_hex(key_hex);
  if (!ready() || !key || token.size() > 1024 || token.rfind("sve1:", 0) != 0) return std::nullopt;
  size_t a = 5, b = token.find(':', a);
  if (b == std::string::npos) return std::nullopt;
  size_t c = token.find(':', b + 1);
  if (c == std::string::npos) return std::nullopt;
  std::string user = token.substr(a, b - a), expires_text = token.substr(b + 1, c - b - 1),
              given = token.substr(c + 1);
  if (user.empty() || expires_text.empty() || expires_text.size() > 19 ||
      expires_text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  uint64_t expires = std::stoull(expires_text);
  if (expires <= now_unix) return std::nullopt;
  auto hash = password_hash_of(user);
  if (!hash) return std::nullopt;
  std::string want = mac(*key, signed_text(user, expires, *hash));
  if (want.size() != given.size() ||
      sodium_memcmp(want.data(), given.data(), want.size()) != 0)
    return std::nullopt;
  return user;
}

}  // namespace sve

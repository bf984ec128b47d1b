#include "io/iscsi/iscsi_chap.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "util/hex.hpp"

namespace sve::iscsi {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<Bytes> parse_binary(const std::string& v) {
  if (v.size() < 3 || v[0] != '0') return std::nullopt;
  if (v[1] == 'x' || v[1] == 'X') {
    std::string digits = v.substr(2);
    if (digits.size() % 2) digits.insert(digits.begin(), '0');  // (a leading zero may be left out)
    return parse_hex(digits);
  }
  Bytes out;
  if (v[1] == 'b' || v[1] == 'B') {
    uint32_t acc = 0;
    int bits = 0;
    size_t at = 2;
    for (; at < v.size() && v[at] != '='; ++at) {
      int d = base64_value(v[at]);
      if (d < 0) return std::nullopt;
      acc = acc << 6 | static_cast<uint32_t>(d);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<uint8_t>(acc >> bits));
      }
    }
    for (; at < v.size(); ++at)
      if (v[at] != '=') return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::string hex_value(const Bytes& bytes) { return "0x" + to_hex(bytes.data(), bytes.size()); }

Bytes chap_response(uint8_t identifier, const std::string& secret, const Bytes& challenge) {
  Bytes input;
  input.push_back(identifier);
  input.insert(input.end(), secret.begin(), secret.end());
  input.insert(input.end(), challenge.begin(), challenge.end());
  Bytes out(16);
  gnutls_hash_fast(GNUTLS_DIG_MD5, input.data(), input.size(), out.data());
  return out;
}

Bytes random_bytes(size_t n) {
  Bytes out(n);
  gnutls_rnd(GNUTLS_RND_NONCE, out.data(), n);
  return out;
}

bool chap_valid(uint8_t identifier, const std::string& secret, const Bytes& challenge,
                const Bytes& response) {
  Bytes expected = chap_response(identifier, secret, challenge);
  if (response.size() != expected.size()) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < expected.size(); ++i) diff |= expected[i] ^ response[i];
  return diff == 0;
}

}  // namespace sve::iscsi

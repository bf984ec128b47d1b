#pragma once
// CHAP for iSCSI logins (RFC 7143 12.1.3, RFC 1994): the target's
// challenge, the check of the initiator's response, and the target's own
// response when the initiator asks for mutual authentication. MD5, as
// every initiator speaks it (CHAP_A=5); the digest comes from GnuTLS.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sve::iscsi {

using Bytes = std::vector<uint8_t>;

inline constexpr int kChapMd5 = 5;
inline constexpr size_t kChallengeBytes = 16;

// A binary value: 0x and hex digits, or 0b and base64 (RFC 7143 6.1).
std::optional<Bytes> parse_binary(const std::string& value);
std::string hex_value(const Bytes& bytes);  // "0x..."

// MD5(identifier || secret || challenge).
Bytes chap_response(uint8_t identifier, const std::string& secret, const Bytes& challenge);

// Random bytes for a challenge and an identifier.
Bytes random_bytes(size_t n);

// Whether `response` answers `challenge` under `secret` (in constant time).
bool chap_valid(uint8_t identifier, const std::string& secret, const Bytes& challenge,
                const Bytes& response);

}  // namespace sve::iscsi

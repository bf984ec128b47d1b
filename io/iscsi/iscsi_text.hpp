#pragma once
// iSCSI text keys and the negotiation of a session's operational
// parameters (RFC 7143, sections 6 and 13): the "key=value" pairs of login
// and text requests, parsed as hostile input, and the target's answers by
// each key's rule (list, minimum, maximum, AND, OR, declarative). Keys of
// the login itself (names, session type, authentication) are left to the
// login's state machine; anything unknown is answered NotUnderstood.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_pdu.hpp"
#include "util/result.hpp"

namespace sve::iscsi {

struct TextPair {
  std::string key;
  std::string value;
  bool operator==(const TextPair&) const = default;
};

inline constexpr size_t kMaxKeyBytes = 63;
inline constexpr size_t kMaxValueBytes = 8192;  // (CHAP's binary values are long)

// The pairs of a complete text (a login or text request's data segments,
// joined): each "key=value" ended by a NUL. Refuses a malformed pair,
// naming it.
Result<std::vector<TextPair>> parse_text(const uint8_t* data, size_t bytes);
std::string format_text(const std::vector<TextPair>& pairs);

// A numerical value: decimal, or hexadecimal with 0x (RFC 7143 6.1).
std::optional<uint64_t> parse_number(const std::string& value);

// The operational parameters of a session and its connection, as
// negotiated; defaults are RFC 7143's.
struct SessionParams {
  bool header_digest = false;
  bool data_digest = false;
  uint32_t initiator_max_recv = 8192;  // the largest data segment we may send
  uint32_t target_max_recv = 8192;     // the largest we take (declared by us)
  uint32_t max_burst_length = 262144;
  uint32_t first_burst_length = 65536;
  bool immediate_data = true;
  bool initial_r2t = true;
  uint32_t max_outstanding_r2t = 1;
  uint32_t max_connections = 1;
  bool data_pdu_in_order = true;
  bool data_sequence_in_order = true;
  uint32_t default_time2wait = 2;
  uint32_t default_time2retain = 20;
  uint32_t error_recovery_level = 0;
};

// What this target is willing to do.
struct TargetOffer {
  uint32_t max_recv_data_segment_length = 256 * 1024;
  uint32_t max_burst_length = 1 << 20;
  uint32_t first_burst_length = 256 * 1024;
  uint32_t max_outstanding_r2t = 16;
  uint32_t max_connections = 8;
  bool immediate_data = true;
  bool initial_r2t = false;  // unsolicited data welcome
  bool digests = true;       // CRC32C offered for header and data
};

class Negotiation {
 public:
  explicit Negotiation(TargetOffer offer) : offer_(offer) {
    params_.target_max_recv = offer.max_recv_data_segment_length;
  }

  // Answers one request's operational keys. Keys that belong to the login
  // (see is_login_key) are passed over: the caller answers them. Fails on
  // a protocol error: a key offered twice in one negotiation, or an
  // operational key other than a declarative one during the security stage.
  Result<std::vector<TextPair>> answer(const std::vector<TextPair>& offered, Stage stage);
  // The target's own declarations not yet sent (MaxRecvDataSegmentLength,
  // once, when the operational stage is reached).
  std::vector<TextPair> declarations(Stage stage);
  const SessionParams& params() const { return params_; }
  // A connection added to an existing session: the session's keys (RFC
  // 7143's "leading only": MaxConnections, the bursts, R2T and immediate
  // data rules, ...) were negotiated by its first connection and are
  // answered Irrelevant here; only the connection's own (digests,
  // MaxRecvDataSegmentLength) count.
  void set_leading(bool leading) { leading_ = leading; }

 private:
  std::string answer_one(const TextPair& p);
  TargetOffer offer_;
  SessionParams params_;
  std::set<std::string> seen_;
  bool declared_ = false;
  bool leading_ = true;
};

// Whether a key is the session's, negotiated on its leading connection
// only (RFC 7143 13: "LO").
bool is_leading_only_key(const std::string& key);

// Keys this file negotiates (RFC 7143 13, and RFC 3720's markers).
bool is_operational_key(const std::string& key);

// Keys the login's state machine answers: names, session type, alias,
// authentication (AuthMethod and CHAP_*), the portal group tag.
bool is_login_key(const std::string& key);

}  // namespace sve::iscsi

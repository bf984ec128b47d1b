#include "io/iscsi/iscsi_text.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/hex.hpp"

namespace sve::iscsi {
namespace {

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '+' || c == '@' || c == '_';
}

std::optional<bool> parse_bool(const std::string& v) {
  if (v == "Yes") return true;
  if (v == "No") return false;
  return std::nullopt;
}

const char* yes_no(bool b) { return b ? "Yes" : "No"; }

// A number in [lo, hi], or nothing.
std::optional<uint32_t> number_in(const std::string& v, uint64_t lo, uint64_t hi) {
  auto n = parse_number(v);
  if (!n || *n < lo || *n > hi) return std::nullopt;
  return static_cast<uint32_t>(*n);
}

constexpr uint64_t kMaxSegment = (1u << 24) - 1;

}  // namespace

Result<std::vector<TextPair>> parse_text(const uint8_t* data, size_t bytes) {
  std::vector<TextPair> out;
  size_t at = 0;
  while (at < bytes) {
    const auto* begin = reinterpret_cast<const char*>(data + at);
    const auto* nul = static_cast<const char*>(std::memchr(begin, 0, bytes - at));
    if (!nul) return make_error("a text pair is not ended by a NUL", EINVAL);
    std::string pair(begin, nul);
    at += pair.size() + 1;
    if (pair.empty()) continue;  // (padding some initiators leave)
    auto eq = pair.find('=');
    if (eq == std::string::npos) return make_error("a text pair without '='", EINVAL);
    std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    if (key.empty() || key.size() > kMaxKeyBytes ||
        !std::all_of(key.begin(), key.end(), key_char))
      return make_error("a malformed key in a text pair", EINVAL);
    if (value.size() > kMaxValueBytes)
      return make_error("the value of " + key + " is longer than " +
                            std::to_string(kMaxValueBytes) + " bytes",
                        EINVAL);
    out.push_back({std::move(key), std::move(value)});
  }
  return out;
}

std::string format_text(const std::vector<TextPair>& pairs) {
  std::string out;
  for (const TextPair& p : pairs) {
    out += p.key;
    out += '=';
    out += p.value;
    out += '\0';
  }
  return out;
}

std::optional<uint64_t> parse_number(const std::string& v) {
  if (v.empty() || v.size() > 20) return std::nullopt;
  uint64_t n = 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    if (v.size() > 18) return std::nullopt;  // more than 64 bits
    for (size_t i = 2; i < v.size(); ++i) {
      int d = hex_digit(v[i]);
      if (d < 0) return std::nullopt;
      n = n << 4 | static_cast<uint64_t>(d);
    }
    return n;
  }
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  return n;
}

bool is_operational_key(const std::string& key) {
  static const char* const keys[] = {
      "HeaderDigest",     "DataDigest",         "MaxRecvDataSegmentLength",
      "MaxBurstLength",   "FirstBurstLength",   "MaxOutstandingR2T",
      "MaxConnections",   "ErrorRecoveryLevel", "DefaultTime2Retain",
      "DefaultTime2Wait", "ImmediateData",      "InitialR2T",
      "DataPDUInOrder",   "DataSequenceInOrder", "IFMarker",
      "OFMarker",         "IFMarkInt",          "OFMarkInt"};
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

bool is_leading_only_key(const std::string& key) {
  static const char* const keys[] = {
      "MaxConnections",   "InitialR2T",         "ImmediateData",      "MaxBurstLength",
      "FirstBurstLength", "DefaultTime2Wait",   "DefaultTime2Retain", "MaxOutstandingR2T",
      "DataPDUInOrder",   "DataSequenceInOrder", "ErrorRecoveryLevel"};
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

bool is_login_key(const std::string& key) {
  return key == "InitiatorName" || key == "TargetName" || key == "SessionType" ||
         key == "InitiatorAlias" || key == "TargetAlias" || key == "TargetAddress" ||
         key == "TargetPortalGroupTag" || key == "AuthMethod" || key.rfind("CHAP_", 0) == 0 ||
         key == "SendTargets";
}

Result<std::vector<TextPair>> Negotiation::answer(const std::vector<TextPair>& offered,
                                                  Stage stage) {
  std::vector<TextPair> out;
  for (const TextPair& p : offered) {
    if (is_login_key(p.key)) continue;
    if (!seen_.insert(p.key).second)
      return make_error(p.key + " is offered twice in one negotiation", EPROTO);
    if (!is_operational_key(p.key)) {
      out.push_back({p.key, "NotUnderstood"});
      continue;
    }
    // Only declarative keys may come before the operational stage.
    if (stage == Stage::security && p.key != "MaxRecvDataSegmentLength")
      return make_error(p.key + " is an operational key, offered in the security stage", EPROTO);
    out.push_back({p.key, !leading_ && is_leading_only_key(p.key) ? "Irrelevant" : answer_one(p)});
  }
  // FirstBurstLength may not exceed MaxBurstLength, whichever came first.
  params_.first_burst_length = std::min(params_.first_burst_length, params_.max_burst_length);
  for (TextPair& a : out)
    if (a.key == "FirstBurstLength" && a.value != "Reject" && a.value != "Irrelevant")
      a.value = std::to_string(params_.first_burst_length);
  return out;
}

std::vector<TextPair> Negotiation::declarations(Stage stage) {
  if (stage == Stage::security || declared_) return {};
  declared_ = true;
  return {{"MaxRecvDataSegmentLength", std::to_string(offer_.max_recv_data_segment_length)}};
}

// One key by its rule. An unusable value is answered Reject, and the
// parameter keeps its default (RFC 7143 6.2).
std::string Negotiation::answer_one(const TextPair& p) {
  const std::string& k = p.key;
  const std::string& v = p.value;
  SessionParams& s = params_;
  if (k == "HeaderDigest" || k == "DataDigest") {
    // A list, in the initiator's order of preference.
    size_t from = 0;
    while (from <= v.size()) {
      size_t comma = v.find(',', from);
      std::string choice = v.substr(from, comma == std::string::npos ? comma : comma - from);
      if (choice == "None" || (choice == "CRC32C" && offer_.digests)) {
        (k == "HeaderDigest" ? s.header_digest : s.data_digest) = choice == "CRC32C";
        return choice;
      }
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    return "Reject";
  }
  if (k == "MaxRecvDataSegmentLength") {  // declarative: what the initiator takes
    auto n = number_in(v, 512, kMaxSegment);
    if (!n) return "Reject";
    s.initiator_max_recv = *n;
    declared_ = true;  // (ours goes back as the answer)
    return std::to_string(offer_.max_recv_data_segment_length);
  }
  auto minimum = [&](uint32_t& field, uint64_t lo, uint64_t hi, uint32_t ours) {
    auto n = number_in(v, lo, hi);
    if (!n) return std::string("Reject");
    field = std::min(*n, ours);
    return std::to_string(field);
  };
  auto boolean = [&](bool& field, bool ours, bool is_and) {
    auto b = parse_bool(v);
    if (!b) return std::string("Reject");
    field = is_and ? (*b && ours) : (*b || ours);
    return std::string(yes_no(field));
  };
  if (k == "MaxBurstLength") return minimum(s.max_burst_length, 512, kMaxSegment, offer_.max_burst_length);
  if (k == "FirstBurstLength")
    return minimum(s.first_burst_length, 512, kMaxSegment, offer_.first_burst_length);
  if (k == "MaxOutstandingR2T")
    return minimum(s.max_outstanding_r2t, 1, 65535, offer_.max_outstanding_r2t);
  if (k == "MaxConnections") return minimum(s.max_connections, 1, 65535, offer_.max_connections);
  if (k == "ErrorRecoveryLevel") return minimum(s.error_recovery_level, 0, 2, 0);
  if (k == "DefaultTime2Retain") return minimum(s.default_time2retain, 0, 3600, 20);
  if (k == "DefaultTime2Wait") {  // the larger
    auto n = number_in(v, 0, 3600);
    if (!n) return "Reject";
    s.default_time2wait = std::max<uint32_t>(*n, 2);
    return std::to_string(s.default_time2wait);
  }
  if (k == "ImmediateData") return boolean(s.immediate_data, offer_.immediate_data, true);
  if (k == "InitialR2T") return boolean(s.initial_r2t, offer_.initial_r2t, false);
  // Out-of-order data is not taken: OR with our Yes.
  if (k == "DataPDUInOrder") return boolean(s.data_pdu_in_order, true, false);
  if (k == "DataSequenceInOrder") return boolean(s.data_sequence_in_order, true, false);
  // RFC 3720's markers (gone from RFC 7143): never used.
  if (k == "IFMarker" || k == "OFMarker") return parse_bool(v) ? "No" : "Reject";
  return "Irrelevant";  // IFMarkInt, OFMarkInt
}

}  // namespace sve::iscsi

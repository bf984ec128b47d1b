#include "io/iscsi/iscsi_login.hpp"

#include <cstring>

namespace sve::iscsi {
namespace {

constexpr uint8_t kTransit = 0x80, kContinue = 0x40;
constexpr size_t kMaxLoginText = 64 * 1024;  // a login's text, over all its requests

std::string value_of(const std::vector<TextPair>& keys, const std::string& key) {
  for (const TextPair& p : keys)
    if (p.key == key) return p.value;
  return {};
}

bool has(const std::vector<TextPair>& keys, const std::string& key) {
  for (const TextPair& p : keys)
    if (p.key == key) return true;
  return false;
}

bool listed(const std::string& list, const std::string& item) {
  size_t from = 0;
  for (;;) {
    size_t comma = list.find(',', from);
    if (list.compare(from, comma == std::string::npos ? std::string::npos : comma - from, item) ==
        0)
      return true;
    if (comma == std::string::npos) return false;
    from = comma + 1;
  }
}

Bhs response_to(const Bhs& request, uint32_t stat_sn, uint32_t exp_cmd_sn, uint32_t window) {
  Bhs r;
  r.set_opcode(Op::login_response);
  for (size_t i = 8; i < 14; ++i) r.set_byte(i, request.byte(i));  // ISID
  r.set_initiator_task_tag(request.initiator_task_tag());
  r.put32(24, stat_sn);
  r.put32(28, exp_cmd_sn);
  r.put32(32, exp_cmd_sn + window - 1);
  return r;
}

}  // namespace

LoginMachine::LoginMachine(LoginConfig config)
    : config_(std::move(config)), negotiation_(config_.offer) {}

LoginMachine::Reply LoginMachine::fail(const Bhs& request, LoginStatus status, std::string why,
                                       uint32_t stat_sn) {
  failure_ = std::move(why);
  Reply r;
  r.header = response_to(request, stat_sn, cmd_sn_, config_.command_window);
  r.header.set_flags(static_cast<uint8_t>((request.flags() >> 2 & 3) << 2));
  r.header.put16(36, static_cast<uint16_t>(status));  // status class and detail
  r.close = true;
  return r;
}

std::string LoginMachine::initiator_port() const {
  static const char* kHex = "0123456789abcdef";
  std::string port = initiator_ + ",i,0x";
  for (uint8_t b : isid_) {
    port.push_back(kHex[b >> 4]);
    port.push_back(kHex[b & 0xf]);
  }
  return port;
}

LoginMachine::Reply LoginMachine::on_request(const Bhs& q, const uint8_t* data, size_t bytes,
                                             uint32_t stat_sn) {
  using S = LoginStatus;
  if (q.opcode() != static_cast<uint8_t>(Op::login) || stage_ == Stage::full_feature)
    return fail(q, S::invalid_during_login, "a PDU other than a login request during login",
                stat_sn);
  const uint8_t flags = q.flags();
  const bool transit = flags & kTransit, more = flags & kContinue;
  const auto csg = static_cast<Stage>(flags >> 2 & 3), nsg = static_cast<Stage>(flags & 3);
  if (q.byte(3) != 0)  // Version-min: only version 0 exists
    return fail(q, S::unsupported_version, "a version other than 0", stat_sn);
  if (transit && more) return fail(q, S::initiator_error, "both T and C set", stat_sn);
  if (csg != Stage::security && csg != Stage::operational)
    return fail(q, S::initiator_error, "a login in no stage it can be in", stat_sn);
  if (transit && (nsg == static_cast<Stage>(2) || static_cast<int>(nsg) <= static_cast<int>(csg)))
    return fail(q, S::initiator_error, "a transit to no stage that follows", stat_sn);
  if (first_) {
    std::memcpy(isid_, q.data() + 8, sizeof isid_);
    joined_ = q.get16(14);  // (checked once the initiator has named itself)
    cid_ = q.get16(20);
    negotiation_.set_leading(joined_ == 0);
    cmd_sn_ = q.get32(24);
    stage_ = csg;  // (an initiator may skip the security stage)
  } else if (std::memcmp(isid_, q.data() + 8, sizeof isid_) != 0) {
    return fail(q, S::initiator_error, "the ISID changed during the login", stat_sn);
  } else if (csg != stage_) {
    return fail(q, S::initiator_error, "a login request for another stage than the current",
                stat_sn);
  }
  if (pending_.size() + bytes > kMaxLoginText)
    return fail(q, S::initiator_error, "more than 64 KiB of login text", stat_sn);
  pending_.append(reinterpret_cast<const char*>(data), bytes);
  Reply reply;
  reply.header = response_to(q, stat_sn, cmd_sn_, config_.command_window);
  if (more) {  // the rest of the text follows: an empty answer asks for it
    reply.header.set_flags(static_cast<uint8_t>(static_cast<uint8_t>(csg) << 2));
    return reply;
  }
  auto parsed = parse_text(reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size());
  pending_.clear();
  if (!parsed) return fail(q, S::initiator_error, parsed.error().message, stat_sn);
  const std::vector<TextPair>& keys = parsed.value();
  for (size_t i = 0; i < keys.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (keys[i].key == keys[j].key)
        return fail(q, S::initiator_error, keys[i].key + " given twice in one request", stat_sn);
  std::vector<TextPair> answers;

  if (first_) {
    first_ = false;
    initiator_ = value_of(keys, "InitiatorName");
    if (initiator_.empty())
      return fail(q, S::missing_parameter, "no InitiatorName in the first request", stat_sn);
    std::string type = value_of(keys, "SessionType");
    if (type == "Discovery") {
      type_ = SessionType::discovery;
    } else if (type.empty() || type == "Normal") {
      type_ = SessionType::normal;
    } else {
      return fail(q, S::initiator_error, "SessionType " + type + " is neither Normal nor Discovery",
                  stat_sn);
    }
    if (type_ == SessionType::normal) {
      std::string target = value_of(keys, "TargetName");
      if (target.empty())
        return fail(q, S::missing_parameter, "no TargetName for a normal session", stat_sn);
      if (target != config_.target_name)
        return fail(q, S::target_not_found, "no target named " + target, stat_sn);
    }
    policy_ = config_.policy ? config_.policy(initiator_, type_) : LoginPolicy{};
    if (!policy_.allowed) return fail(q, S::authorization_failure, policy_.why, stat_sn);
    if (joined_ != 0) {
      // Another connection of a session: of its initiator port, to this
      // portal group, while it has room for one more.
      JoinAnswer join;
      if (type_ != SessionType::normal)
        join.why = "a discovery session has one connection";
      else if (!config_.join)
        join.why = "adding a connection to an existing session is not supported here";
      else
        join = config_.join(initiator_port(), joined_, cid_);
      if (join.status != S::success) return fail(q, join.status, join.why, stat_sn);
    }
    if (type_ == SessionType::normal)
      answers.push_back({"TargetPortalGroupTag", std::to_string(config_.portal_group_tag)});
  }

  if (stage_ == Stage::security) {
    LoginStatus status = S::authentication_failure;
    if (std::string why = authenticate(keys, answers, status); !why.empty())
      return fail(q, status, why, stat_sn);
  } else {
    for (const TextPair& p : keys)
      if (p.key == "AuthMethod" || p.key.rfind("CHAP_", 0) == 0)
        return fail(q, S::initiator_error, p.key + " outside the security stage", stat_sn);
  }
  auto ops = negotiation_.answer(keys, stage_);
  if (!ops) return fail(q, S::initiator_error, ops.error().message, stat_sn);
  answers.insert(answers.end(), ops.value().begin(), ops.value().end());

  // Whether this side lets the login move on: past the security stage only
  // once the initiator proved what its host requires.
  const bool authenticated =
      auth_ == Auth::done || (auth_ == Auth::none_chosen && policy_.chap_secret.empty());
  if (stage_ != Stage::security && !authenticated)
    return fail(q, S::authentication_failure, "CHAP is required for " + initiator_, stat_sn);
  bool moving = transit && authenticated;
  Stage next = moving ? nsg : csg;
  if (next != Stage::security)
    for (TextPair& d : negotiation_.declarations(next)) answers.push_back(std::move(d));
  uint8_t out_flags = static_cast<uint8_t>(static_cast<uint8_t>(csg) << 2);
  if (moving) out_flags |= kTransit | static_cast<uint8_t>(nsg);
  reply.header.set_flags(out_flags);
  if (moving) stage_ = nsg;
  if (stage_ == Stage::full_feature) reply.header.put16(14, joined_ ? joined_ : config_.tsih);
  reply.text = format_text(answers);
  reply.header.set_data_segment_length(static_cast<uint32_t>(reply.text.size()));
  return reply;
}

std::string LoginMachine::authenticate(const std::vector<TextPair>& keys,
                                       std::vector<TextPair>& answers, LoginStatus& status) {
  const bool chap_required = !policy_.chap_secret.empty();
  for (const TextPair& p : keys) {
    if (p.key == "AuthMethod") {
      if (auth_method_seen_) {
        status = LoginStatus::initiator_error;
        return "AuthMethod offered twice";
      }
      auth_method_seen_ = true;
      if (chap_required ? listed(p.value, "CHAP") : listed(p.value, "None")) {
        auth_ = chap_required ? Auth::chap_chosen : Auth::none_chosen;
        answers.push_back({"AuthMethod", chap_required ? "CHAP" : "None"});
        continue;
      }
      answers.push_back({"AuthMethod", "Reject"});
      return chap_required ? initiator_ + " offers no CHAP, which its host requires"
                           : initiator_ + " offers no AuthMethod None, and its host has no CHAP secret";
    }
    if (p.key == "CHAP_A") {
      if (auth_ != Auth::chap_chosen) {
        status = LoginStatus::initiator_error;
        return "CHAP_A without CHAP chosen";
      }
      bool md5 = false;
      size_t from = 0;
      while (from <= p.value.size()) {
        size_t comma = p.value.find(',', from);
        auto n = parse_number(p.value.substr(from, comma == std::string::npos ? comma : comma - from));
        md5 |= n && *n == static_cast<uint64_t>(kChapMd5);
        if (comma == std::string::npos) break;
        from = comma + 1;
      }
      if (!md5) {
        answers.push_back({"CHAP_A", "Reject"});
        return initiator_ + " offers no CHAP algorithm this target speaks (MD5)";
      }
      chap_id_ = random_bytes(1)[0];
      chap_challenge_ = random_bytes(kChallengeBytes);
      answers.push_back({"CHAP_A", std::to_string(kChapMd5)});
      answers.push_back({"CHAP_I", std::to_string(chap_id_)});
      answers.push_back({"CHAP_C", hex_value(chap_challenge_)});
      auth_ = Auth::chap_challenged;
      continue;
    }
    if (p.key == "CHAP_R") {
      if (auth_ != Auth::chap_challenged || value_of(keys, "CHAP_N").empty()) {
        status = LoginStatus::initiator_error;
        return "CHAP_R without a challenge or a CHAP_N";
      }
      auto response = parse_binary(p.value);
      if (!response || !chap_valid(chap_id_, policy_.chap_secret, chap_challenge_, *response))
        return "a wrong CHAP response from " + initiator_;
      auth_ = Auth::done;
      if (has(keys, "CHAP_I") || has(keys, "CHAP_C")) {  // mutual: the target proves itself
        auto id = parse_number(value_of(keys, "CHAP_I"));
        auto challenge = parse_binary(value_of(keys, "CHAP_C"));
        if (!id || *id > 255 || !challenge || challenge->empty() || challenge->size() > 1024) {
          status = LoginStatus::initiator_error;
          return "a malformed CHAP_I or CHAP_C";
        }
        if (policy_.target_secret.empty())
          return initiator_ + " asks for mutual CHAP, and its host has no target secret";
        if (*challenge == chap_challenge_)  // our own challenge reflected back
          return initiator_ + " sent the target's own challenge back";
        answers.push_back({"CHAP_N", config_.target_name});
        answers.push_back({"CHAP_R", hex_value(chap_response(static_cast<uint8_t>(*id),
                                                             policy_.target_secret, *challenge))});
      }
      continue;
    }
  }
  return {};
}

}  // namespace sve::iscsi

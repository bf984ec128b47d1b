// The target's side of an iSCSI login (io/iscsi/iscsi_login.hpp): the
// requests a real initiator sends (libiscsi's order of keys), with no
// authentication, one-way and mutual CHAP, continued text, and every way
// a login fails, each with the status RFC 7143 gives it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "io/iscsi/iscsi_login.hpp"

using namespace sve::iscsi;

namespace {

const std::string kTarget = "iqn.2026-12.org.sve:c1";
const std::string kInitiator = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test";

// A Login Request: stage CSG, and a transit to NSG when `transit`.
Bhs login(int csg, int nsg, bool transit, bool more = false, uint16_t tsih = 0) {
  Bhs h;
  h.set_opcode(Op::login, true);
  h.set_flags(static_cast<uint8_t>((transit ? 0x80 : 0) | (more ? 0x40 : 0) | csg << 2 |
                                   (transit ? nsg : 0)));
  const uint8_t isid[6] = {0x80, 0x12, 0x34, 0x56, 0x00, 0x01};
  for (int i = 0; i < 6; ++i) h.set_byte(8 + i, isid[i]);
  h.put16(14, tsih);
  h.set_initiator_task_tag(0x1000);
  h.put32(24, 77);  // CmdSN
  return h;
}

struct Login {
  LoginMachine m;
  uint32_t stat_sn = 1;
  explicit Login(LoginPolicy policy, uint16_t tsih = 9)
      : m(LoginConfig{kTarget, 1, tsih, TargetOffer{}, 64,
                      [policy](const std::string&, SessionType) { return policy; }, {}}) {}
  LoginMachine::Reply send(const Bhs& h, const std::vector<TextPair>& keys) {
    std::string text = format_text(keys);
    return m.on_request(h, reinterpret_cast<const uint8_t*>(text.data()), text.size(), stat_sn++);
  }
};

uint16_t status(const LoginMachine::Reply& r) { return r.header.get16(36); }

std::string value(const LoginMachine::Reply& r, const std::string& key) {
  auto pairs = parse_text(reinterpret_cast<const uint8_t*>(r.text.data()), r.text.size());
  REQUIRE(pairs);
  for (const TextPair& p : pairs.value())
    if (p.key == key) return p.value;
  return "(absent)";
}

std::vector<TextPair> names() {
  return {{"InitiatorName", kInitiator}, {"TargetName", kTarget}, {"SessionType", "Normal"}};
}

std::vector<TextPair> with(std::vector<TextPair> keys, std::vector<TextPair> more) {
  keys.insert(keys.end(), more.begin(), more.end());
  return keys;
}

LoginPolicy allowed(std::string secret = "", std::string target_secret = "") {
  return LoginPolicy{true, "", std::move(secret), std::move(target_secret)};
}

}  // namespace

TEST_CASE("iSCSI login without authentication reaches the full-feature phase", "[iscsi-login]") {
  Login l(allowed());
  auto r = l.send(login(0, 1, true), with(names(), {{"AuthMethod", "None"}}));
  CHECK(status(r) == 0);
  CHECK_FALSE(r.close);
  CHECK(r.header.opcode() == static_cast<uint8_t>(Op::login_response));
  CHECK(r.header.flags() == (0x80 | 0 << 2 | 1));  // T, CSG security, NSG operational
  CHECK(r.header.initiator_task_tag() == 0x1000);
  CHECK(r.header.byte(8) == 0x80);                  // the ISID echoed
  CHECK(r.header.get32(24) == 1);                   // StatSN
  CHECK(r.header.get32(28) == 77);                  // ExpCmdSN
  CHECK(r.header.get32(32) == 77 + 63);             // MaxCmdSN
  CHECK(r.header.data_segment_length() == r.text.size());
  CHECK(value(r, "AuthMethod") == "None");
  CHECK(value(r, "TargetPortalGroupTag") == "1");
  CHECK(value(r, "MaxRecvDataSegmentLength") != "(absent)");  // declared on entering it
  CHECK(r.header.get16(14) == 0);                   // no TSIH before the last response

  r = l.send(login(1, 3, true), {{"HeaderDigest", "None"},
                                  {"DataDigest", "None"},
                                  {"InitialR2T", "Yes"},
                                  {"ImmediateData", "Yes"},
                                  {"MaxBurstLength", "262144"},
                                  {"FirstBurstLength", "262144"},
                                  {"MaxRecvDataSegmentLength", "262144"}});
  CHECK(status(r) == 0);
  CHECK(r.header.flags() == (0x80 | 1 << 2 | 3));
  CHECK(r.header.get16(14) == 9);  // the TSIH
  CHECK(value(r, "MaxBurstLength") == "262144");
  CHECK(l.m.full_feature());
  CHECK(l.m.params().initiator_max_recv == 262144);
  CHECK(l.m.initiator_name() == kInitiator);
  CHECK(l.m.session_type() == SessionType::normal);

  // Once in the full-feature phase, another login request is refused.
  CHECK(status(l.send(login(1, 3, true), {})) == static_cast<uint16_t>(LoginStatus::invalid_during_login));
}

TEST_CASE("iSCSI login: a target that waits for the rest of a continued text", "[iscsi-login]") {
  Login l(allowed());
  std::string text = format_text(with(names(), {{"AuthMethod", "None"}}));
  size_t half = text.size() / 2;
  auto r = l.m.on_request(login(0, 1, false, true),
                          reinterpret_cast<const uint8_t*>(text.data()), half, 1);
  CHECK(status(r) == 0);
  CHECK(r.text.empty());
  CHECK((r.header.flags() & 0x80) == 0);  // no transit yet
  r = l.m.on_request(login(0, 1, true), reinterpret_cast<const uint8_t*>(text.data()) + half,
                     text.size() - half, 2);
  CHECK(status(r) == 0);
  CHECK(value(r, "AuthMethod") == "None");
  CHECK(r.header.flags() == (0x80 | 1));
}

TEST_CASE("iSCSI login with CHAP, one-way and mutual", "[iscsi-login]") {
  const std::string secret = "host-secret-1234", target_secret = "target-secret-5678";
  Login l(allowed(secret, target_secret));
  auto r = l.send(login(0, 1, false), with(names(), {{"AuthMethod", "CHAP,None"}}));
  CHECK(value(r, "AuthMethod") == "CHAP");
  r = l.send(login(0, 1, false), {{"CHAP_A", "7,5"}});
  REQUIRE(value(r, "CHAP_A") == "5");
  auto id = parse_number(value(r, "CHAP_I"));
  auto challenge = parse_binary(value(r, "CHAP_C"));
  REQUIRE(id);
  REQUIRE(challenge);
  CHECK(challenge->size() >= 16);
  Bytes answer = chap_response(static_cast<uint8_t>(*id), secret, *challenge);

  SECTION("the right response, and the target proves itself back") {
    Bytes mine = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    r = l.send(login(0, 1, true), {{"CHAP_N", kInitiator},
                                   {"CHAP_R", hex_value(answer)},
                                   {"CHAP_I", "33"},
                                   {"CHAP_C", hex_value(mine)}});
    CHECK(status(r) == 0);
    CHECK(r.header.flags() == (0x80 | 1));  // on to the operational stage
    CHECK(value(r, "CHAP_N") == kTarget);
    auto proof = parse_binary(value(r, "CHAP_R"));
    REQUIRE(proof);
    CHECK(chap_valid(33, target_secret, mine, *proof));
  }
  SECTION("a base64 response is taken too") {
    // 16 bytes in base64 ("0b" and 24 characters, two of them padding).
    static const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b64 = "0b";
    for (size_t i = 0; i < answer.size(); i += 3) {
      uint32_t v = uint32_t{answer[i]} << 16 |
                   (i + 1 < answer.size() ? uint32_t{answer[i + 1]} << 8 : 0) |
                   (i + 2 < answer.size() ? answer[i + 2] : 0);
      b64 += alphabet[v >> 18 & 63];
      b64 += alphabet[v >> 12 & 63];
      b64 += i + 1 < answer.size() ? alphabet[v >> 6 & 63] : '=';
      b64 += i + 2 < answer.size() ? alphabet[v & 63] : '=';
    }
    r = l.send(login(0, 1, true), {{"CHAP_N", kInitiator}, {"CHAP_R", b64}});
    CHECK(status(r) == 0);
  }
  SECTION("a wrong response fails the login") {
    answer[0] ^= 1;
    r = l.send(login(0, 1, true), {{"CHAP_N", kInitiator}, {"CHAP_R", hex_value(answer)}});
    CHECK(status(r) == static_cast<uint16_t>(LoginStatus::authentication_failure));
    CHECK(r.close);
  }
  SECTION("the target's own challenge reflected back is refused") {
    r = l.send(login(0, 1, true), {{"CHAP_N", kInitiator},
                                   {"CHAP_R", hex_value(answer)},
                                   {"CHAP_I", std::to_string(*id)},
                                   {"CHAP_C", hex_value(*challenge)}});
    CHECK(status(r) == static_cast<uint16_t>(LoginStatus::authentication_failure));
  }
  SECTION("no transit before the response") {
    Login m(allowed(secret));
    r = m.send(login(0, 1, true), with(names(), {{"AuthMethod", "CHAP,None"}}));
    CHECK(status(r) == 0);
    CHECK((r.header.flags() & 0x80) == 0);  // still in the security stage
  }
}

TEST_CASE("iSCSI login of a connection that joins a session", "[iscsi-login]") {
  // The port says which sessions may take one more: TSIH 5 of this
  // initiator port may, TSIH 6 is full, no other exists.
  std::vector<std::pair<std::string, uint16_t>> asked;
  auto join = [&](const std::string& port, uint16_t tsih, uint16_t cid) {
    CHECK(cid == 4);  // the joining connection's, for the port to expect it
    asked.emplace_back(port, tsih);
    JoinAnswer a;
    if (tsih == 5) a.status = LoginStatus::success;
    if (tsih == 6) a.status = LoginStatus::too_many_connections;
    return a;
  };
  auto joining = [&](uint16_t tsih, const std::vector<TextPair>& keys) {
    LoginMachine m(LoginConfig{kTarget, 1, 9, TargetOffer{}, 64,
                               [](const std::string&, SessionType) { return allowed(); }, join});
    Bhs h = login(1, 3, true, false, tsih);
    h.put16(20, 4);  // CID
    std::string text = format_text(keys);
    auto r = m.on_request(h, reinterpret_cast<const uint8_t*>(text.data()), text.size(), 1);
    CHECK(m.joined() == (r.close ? m.joined() : tsih));
    CHECK(m.cid() == 4);
    return r;
  };
  auto ok = joining(5, with(names(), {{"MaxBurstLength", "4096"}, {"HeaderDigest", "CRC32C"},
                                      {"MaxConnections", "2"}}));
  CHECK_FALSE(ok.close);
  CHECK(ok.header.get16(14) == 5);  // its session's TSIH, not a new one
  CHECK(value(ok, "MaxBurstLength") == "Irrelevant");  // the session's key
  CHECK(value(ok, "MaxConnections") == "Irrelevant");
  CHECK(value(ok, "HeaderDigest") == "CRC32C");        // the connection's own
  REQUIRE(asked.size() == 1);
  CHECK(asked[0].first == std::string(kInitiator) + ",i,0x801234560001");
  auto full = joining(6, names());
  CHECK((full.close && status(full) == 0x0206));
  auto none = joining(7, names());
  CHECK((none.close && status(none) == 0x020a));
  // A discovery session has one connection: never asked.
  auto discovery = joining(5, {{"InitiatorName", kInitiator}, {"SessionType", "Discovery"}});
  CHECK((discovery.close && status(discovery) == 0x020a));
  CHECK(asked.size() == 3);
}

TEST_CASE("iSCSI logins that fail, each with its status", "[iscsi-login]") {
  using S = LoginStatus;
  auto fails = [](LoginPolicy policy, const Bhs& h, const std::vector<TextPair>& keys) {
    Login l(policy);
    auto r = l.send(h, keys);
    CHECK(r.close);
    CHECK(r.text.empty());
    return static_cast<S>(status(r));
  };
  const auto none = with(names(), {{"AuthMethod", "None"}});
  CHECK(fails(allowed(), login(0, 1, true),
              {{"InitiatorName", kInitiator}, {"TargetName", "iqn.other"}}) == S::target_not_found);
  CHECK(fails(LoginPolicy{false, "no such host", "", ""}, login(0, 1, true), none) ==
        S::authorization_failure);
  CHECK(fails(allowed(), login(0, 1, true), {{"TargetName", kTarget}}) == S::missing_parameter);
  CHECK(fails(allowed(), login(0, 1, true), {{"InitiatorName", kInitiator}}) ==
        S::missing_parameter);
  CHECK(fails(allowed(), login(0, 1, true),
              {{"InitiatorName", kInitiator}, {"TargetName", kTarget}, {"SessionType", "Other"}}) ==
        S::initiator_error);
  CHECK(fails(allowed(), login(0, 1, true), with(names(), {{"SessionType", "Discovery"}})) ==
        S::initiator_error);  // a key given twice in one request
  CHECK(fails(allowed(), login(0, 1, true, false, 5), none) == S::session_does_not_exist);
  CHECK(fails(allowed(), login(0, 1, true, true), none) == S::initiator_error);   // T and C
  CHECK(fails(allowed(), login(0, 0, true), none) == S::initiator_error);         // NSG not after
  CHECK(fails(allowed(), login(3, 3, true), none) == S::initiator_error);         // no such CSG
  CHECK(fails(allowed("secret-of-twelve"), login(0, 1, true), none) ==
        S::authentication_failure);  // offers None only, CHAP required
  CHECK(fails(allowed("secret-of-twelve"), login(1, 3, true), names()) ==
        S::authentication_failure);  // skips the security stage, CHAP required
  Bhs old = login(0, 1, true);
  old.set_byte(3, 1);  // Version-min 1
  CHECK(fails(allowed(), old, none) == S::unsupported_version);
  CHECK(fails(allowed(), login(0, 1, true), with(names(), {{"MaxBurstLength", "65536"}})) ==
        S::initiator_error);  // an operational key in the security stage

  // A discovery session needs no target name and gets no portal group tag.
  Login d(allowed());
  auto r = d.send(login(0, 1, true), {{"InitiatorName", kInitiator},
                                      {"SessionType", "Discovery"},
                                      {"AuthMethod", "None"}});
  CHECK(status(r) == 0);
  CHECK(value(r, "TargetPortalGroupTag") == "(absent)");
  CHECK(d.m.session_type() == SessionType::discovery);
}

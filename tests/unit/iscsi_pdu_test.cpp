// iSCSI's protocol core: header fields, what follows a header, digests as
// RFC 3720's examples give them, text pairs as hostile input, and each
// negotiated key by its rule (RFC 7143 13).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_pdu.hpp"
#include "io/iscsi/iscsi_text.hpp"

using namespace sve::iscsi;

namespace {

std::vector<TextPair> parsed(const std::string& text) {
  auto r = parse_text(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  REQUIRE(r);
  return r.value();
}

bool refused(const std::string& text) {
  return !parse_text(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

std::string value_of(const std::vector<TextPair>& pairs, const std::string& key) {
  for (const TextPair& p : pairs)
    if (p.key == key) return p.value;
  return "(absent)";
}

}  // namespace

TEST_CASE("iSCSI headers: fields, the layout after them, digests", "[iscsi]") {
  Bhs h;
  h.set_opcode(Op::scsi_command, true);
  h.set_flags(0x80 | 0x20);
  h.set_data_segment_length(0x012345);
  h.set_lun(0x0001000000000000ull);
  h.set_initiator_task_tag(0xdeadbeef);
  h.put32(20, 4096);
  Bhs back = Bhs::from(h.data());
  CHECK(back.opcode() == static_cast<uint8_t>(Op::scsi_command));
  CHECK(back.immediate());
  CHECK(back.final());
  CHECK(back.data_segment_length() == 0x012345);
  CHECK(back.lun() == 0x0001000000000000ull);
  CHECK(back.initiator_task_tag() == 0xdeadbeef);
  CHECK(back.get32(20) == 4096);
  CHECK(h.data()[5] == 0x01);  // big-endian, 24 bits
  CHECK(h.data()[7] == 0x45);

  h.set_data_segment_length(5);
  h.set_byte(4, 2);  // eight bytes of additional headers
  PduLayout l = layout_of(h, Digests{true, true}, 8192);
  CHECK(l.error.empty());
  CHECK(l.ahs_bytes == 8);
  CHECK(l.header_digest_bytes == 4);
  CHECK(l.data_bytes == 5);
  CHECK(l.data_padded_bytes == 8);
  CHECK(l.data_digest_bytes == 4);
  h.set_data_segment_length(0);
  CHECK(layout_of(h, Digests{true, true}, 8192).data_digest_bytes == 0);

  // More data than this side declared it takes; an opcode only a target sends.
  h.set_data_segment_length(8193);
  CHECK_FALSE(layout_of(h, Digests{}, 8192).error.empty());
  CHECK(layout_of(h, Digests{}, 8192).data_padded_bytes == 0);
  h.set_data_segment_length(0);
  h.set_opcode(Op::scsi_response);
  CHECK(layout_of(h, Digests{}, 8192).error.find("0x21") != std::string::npos);
  Bhs junk;
  junk.set_byte(0, 0x3e);
  CHECK_FALSE(layout_of(junk, Digests{}, 8192).error.empty());

  // RFC 3720 B.4's CRC32C examples.
  uint8_t bytes[32];
  std::memset(bytes, 0, sizeof bytes);
  CHECK(digest(bytes, 32) == 0x8a9136aau);
  std::memset(bytes, 0xff, sizeof bytes);
  CHECK(digest(bytes, 32) == 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<uint8_t>(i);
  CHECK(digest(bytes, 32) == 0x46dd794eu);

  CHECK(sn_less(0xffffffffu, 1));
  CHECK_FALSE(sn_less(1, 0xffffffffu));
  CHECK_FALSE(sn_less(7, 7));
}

TEST_CASE("iSCSI text pairs are parsed as hostile input", "[iscsi]") {
  std::string text("InitiatorName=iqn.2026-12.org.example:h1\0SessionType=Normal\0", 60);
  auto pairs = parsed(text);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0] == TextPair{"InitiatorName", "iqn.2026-12.org.example:h1"});
  CHECK(pairs[1] == TextPair{"SessionType", "Normal"});
  CHECK(format_text(pairs) == text);
  CHECK(parsed(std::string("A=\0\0", 4)).size() == 1);  // an empty value; an empty pair skipped
  CHECK(refused("Key=value"));                            // no NUL
  CHECK(refused(std::string("novalue\0", 8)));
  CHECK(refused(std::string("=value\0", 7)));
  CHECK(refused(std::string("Bad Key=1\0", 10)));
  CHECK(refused(std::string(64, 'K') + std::string("=1\0", 3)));
  CHECK_FALSE(refused(std::string(63, 'K') + std::string("=1\0", 3)));
  CHECK(refused("K=" + std::string(8193, 'v') + std::string(1, '\0')));

  CHECK(parse_number("262144") == 262144u);
  CHECK(parse_number("0x40000") == 0x40000u);
  CHECK(parse_number("0XfF") == 255u);
  CHECK(parse_number("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(parse_number("18446744073709551616"));
  CHECK_FALSE(parse_number("0x1ffffffffffffffff"));
  CHECK_FALSE(parse_number(""));
  CHECK_FALSE(parse_number("12a"));
  CHECK_FALSE(parse_number("-1"));
  CHECK_FALSE(parse_number("0x"));
}

TEST_CASE("iSCSI operational keys are negotiated by their rules", "[iscsi]") {
  TargetOffer offer;
  Negotiation n(offer);
  CHECK(n.declarations(Stage::security).empty());
  // As libiscsi offers them, plus what must be answered otherwise.
  auto answers = n.answer({{"InitiatorName", "iqn.x"},
                           {"HeaderDigest", "CRC32C,None"},
                           {"DataDigest", "None"},
                           {"MaxRecvDataSegmentLength", "262144"},
                           {"MaxBurstLength", "16776192"},
                           {"FirstBurstLength", "2097152"},
                           {"ImmediateData", "Yes"},
                           {"InitialR2T", "Yes"},
                           {"MaxOutstandingR2T", "1"},
                           {"MaxConnections", "4"},
                           {"DefaultTime2Wait", "0"},
                           {"DataPDUInOrder", "No"},
                           {"ErrorRecoveryLevel", "2"},
                           {"X-com.example.Thing", "1"}},
                          Stage::operational);
  REQUIRE(answers);
  const auto& a = answers.value();
  CHECK(value_of(a, "InitiatorName") == "(absent)");  // the login's to answer
  CHECK(value_of(a, "HeaderDigest") == "CRC32C");
  CHECK(value_of(a, "DataDigest") == "None");
  CHECK(value_of(a, "MaxRecvDataSegmentLength") == std::to_string(offer.max_recv_data_segment_length));
  CHECK(value_of(a, "MaxBurstLength") == std::to_string(offer.max_burst_length));  // the smaller
  CHECK(value_of(a, "FirstBurstLength") == std::to_string(offer.first_burst_length));
  CHECK(value_of(a, "ImmediateData") == "Yes");     // AND
  CHECK(value_of(a, "InitialR2T") == "Yes");        // OR: the initiator's Yes wins
  CHECK(value_of(a, "MaxOutstandingR2T") == "1");
  CHECK(value_of(a, "MaxConnections") == "4");
  CHECK(value_of(a, "DefaultTime2Wait") == "2");    // the larger
  CHECK(value_of(a, "DataPDUInOrder") == "Yes");    // OR with ours
  CHECK(value_of(a, "ErrorRecoveryLevel") == "0");  // only level 0 here
  CHECK(value_of(a, "X-com.example.Thing") == "NotUnderstood");
  const SessionParams& p = n.params();
  CHECK(p.header_digest);
  CHECK_FALSE(p.data_digest);
  CHECK(p.initiator_max_recv == 262144);
  CHECK(p.target_max_recv == offer.max_recv_data_segment_length);
  CHECK(p.max_burst_length == offer.max_burst_length);
  CHECK(p.initial_r2t);
  CHECK(p.immediate_data);
  CHECK(p.max_connections == 4);

  CHECK(n.declarations(Stage::operational).empty());  // declared in the answer
  // Offered twice in one negotiation: a protocol error.
  CHECK_FALSE(n.answer({{"MaxConnections", "2"}}, Stage::operational));

  SECTION("unusable values are answered Reject and keep the defaults") {
    Negotiation m(offer);
    auto r = m.answer({{"MaxBurstLength", "100"},
                       {"MaxOutstandingR2T", "0"},
                       {"ImmediateData", "Maybe"},
                       {"HeaderDigest", "MD5"},
                       {"MaxRecvDataSegmentLength", "0x1000000"}},
                      Stage::operational);
    REQUIRE(r);
    for (const TextPair& t : r.value()) CHECK(t.value == "Reject");
    CHECK(m.params().max_burst_length == 262144);
    CHECK(m.params().max_outstanding_r2t == 1);
    CHECK(m.params().initiator_max_recv == 8192);
    CHECK_FALSE(m.params().header_digest);
  }
  SECTION("FirstBurstLength never exceeds MaxBurstLength") {
    Negotiation m(offer);
    auto r = m.answer({{"FirstBurstLength", "131072"}, {"MaxBurstLength", "65536"}},
                      Stage::operational);
    REQUIRE(r);
    CHECK(value_of(r.value(), "FirstBurstLength") == "65536");
    CHECK(m.params().first_burst_length == 65536);
  }
  SECTION("operational keys in the security stage are a protocol error") {
    Negotiation m(offer);
    CHECK(m.answer({{"AuthMethod", "None"}}, Stage::security));
    CHECK(m.answer({{"MaxRecvDataSegmentLength", "65536"}}, Stage::security));  // declarative
    CHECK_FALSE(m.answer({{"MaxBurstLength", "65536"}}, Stage::security));
  }
  SECTION("the target declares what it receives once") {
    Negotiation m(offer);
    auto d = m.declarations(Stage::operational);
    REQUIRE(d.size() == 1);
    CHECK(d[0].key == "MaxRecvDataSegmentLength");
    CHECK(m.declarations(Stage::operational).empty());
  }
}

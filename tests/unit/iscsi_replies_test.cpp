// The full-feature phase's arithmetic (io/iscsi/iscsi_replies.hpp): the
// command window, a read's Data-In with its status and residuals, which
// parts of a write come unsolicited and which by R2T, and the target's
// response headers, field by field as RFC 7143 lays them out.
#include <catch2/catch.hpp>

#include "io/iscsi/iscsi_discovery.hpp"
#include "io/iscsi/iscsi_replies.hpp"

using namespace sve::iscsi;

TEST_CASE("iSCSI full-feature phase: windows, Data-In, residuals", "[iscsi]") {
  CommandWindow w(100, 64);
  CHECK(w.max_cmd_sn() == 163);
  CHECK(w.take(100, false));
  CHECK(w.exp_cmd_sn() == 101);
  CHECK_FALSE(w.take(100, false));  // again: ignored
  CHECK_FALSE(w.take(105, false));  // ahead of order
  CHECK(w.take(7, true));           // immediate: no number
  CHECK(w.exp_cmd_sn() == 101);
  // An ABORT TASK of 103 and 102, not received: 101 then takes the window
  // past them; 102 coming after all is ignored. Behind the window or past
  // it: nothing.
  w.consider_received(103);
  w.consider_received(102);
  w.consider_received(100);
  w.consider_received(101 + 64);
  CHECK(w.exp_cmd_sn() == 101);
  CHECK(w.take(101, false));
  CHECK(w.exp_cmd_sn() == 104);
  CHECK_FALSE(w.take(102, false));
  CHECK(w.take(104, false));
  w.consider_received(105);  // the next one: at once
  CHECK(w.exp_cmd_sn() == 106);
  w.consider_received(106 + 64);
  CHECK(w.take(106, false));
  CHECK(w.exp_cmd_sn() == 107);
  // With room (a session of several connections), a command ahead of
  // ExpCmdSN is taken once; ExpCmdSN moves once the gap is filled.
  CHECK_FALSE(w.take(111, false, 4));  // past MaxCmdSN as told (107 + 4 - 1)
  CHECK_FALSE(w.take(107 + 64, false, 100));  // (never past the window's depth)
  CHECK(w.take(108, false, 4));
  CHECK_FALSE(w.take(108, false, 4));  // again: ignored
  CHECK(w.exp_cmd_sn() == 107);
  CHECK(w.take(107, false, 4));
  CHECK(w.exp_cmd_sn() == 109);
  CHECK_FALSE(w.take(108, false, 4));  // behind now
  CommandWindow wraps(0xffffffffu, 8);
  CHECK(wraps.take(0xffffffffu, false));
  CHECK(wraps.exp_cmd_sn() == 0);

  Numbers n{10, 101, 164};
  auto pdus = data_in(0xabc, 0x0001000000000000ull, 20000, 20000, 8192, n);
  REQUIRE(pdus.size() == 3);
  CHECK((pdus[0].offset == 0 && pdus[0].length == 8192));
  CHECK((pdus[2].offset == 16384 && pdus[2].length == 3616));
  CHECK(pdus[0].header.opcode() == static_cast<uint8_t>(Op::data_in));
  CHECK(pdus[0].header.flags() == 0);        // neither final nor status
  CHECK(pdus[1].header.get32(36) == 1);      // DataSN
  CHECK(pdus[2].header.get32(40) == 16384);  // buffer offset
  CHECK(pdus[2].header.flags() == (0x80 | 0x01));
  CHECK(pdus[2].header.get32(24) == 10);     // StatSN, taken by the last only
  CHECK(pdus[2].header.get32(32) == 164);
  CHECK(pdus[2].header.lun() == 0x0001000000000000ull);
  CHECK(pdus[0].header.get32(20) == kNoTag);
  CHECK(n.stat_sn == 11);

  // The initiator expected more than the read has: underflow; less: overflow, cut.
  pdus = data_in(1, 0, 4096, 8192, 65536, n);
  REQUIRE(pdus.size() == 1);
  CHECK(pdus[0].header.flags() == (0x80 | 0x01 | 0x02));
  CHECK(pdus[0].header.get32(44) == 4096);
  pdus = data_in(1, 0, 8192, 4096, 65536, n);
  CHECK(pdus[0].length == 4096);
  CHECK(pdus[0].header.flags() == (0x80 | 0x01 | 0x04));
  CHECK(pdus[0].header.get32(44) == 4096);
  pdus = data_in(1, 0, 0, 0, 65536, n);  // no data: one PDU with the status
  CHECK((pdus.size() == 1 && pdus[0].length == 0 && pdus[0].header.flags() == 0x81));

  // Sequences of MaxBurstLength (12,288 here): the PDU that ends one has
  // the F bit, and no PDU crosses into the next.
  pdus = data_in(1, 0, 30000, 30000, 8192, n, 12288);
  REQUIRE(pdus.size() == 5);
  const uint32_t lengths[] = {8192, 4096, 8192, 4096, 5424};
  for (size_t i = 0; i < pdus.size(); ++i) CHECK(pdus[i].length == lengths[i]);
  CHECK(pdus[0].header.flags() == 0);
  CHECK(pdus[1].header.flags() == 0x80);  // the end of the first sequence
  CHECK(pdus[2].header.get32(40) == 12288);
  CHECK(pdus[3].header.flags() == 0x80);
  CHECK(pdus[4].header.flags() == 0x81);
  CHECK(pdus[4].header.get32(36) == 4);  // DataSN runs on across sequences

  auto r = scsi_response(0x77, 0x02, std::vector<uint8_t>(18, 0x70), Residual{true, false, 512}, 3, n);
  CHECK(r.header.opcode() == static_cast<uint8_t>(Op::scsi_response));
  CHECK(r.header.flags() == (0x80 | 0x02));
  CHECK(r.header.byte(3) == 0x02);
  CHECK(r.header.data_segment_length() == 20);
  CHECK((r.data[0] == 0 && r.data[1] == 18));
  CHECK(r.header.get32(44) == 512);
  CHECK(r.header.get32(36) == 3);
  CHECK(scsi_response(1, 0, {}, Residual{}, 0, n).data.empty());
}

TEST_CASE("iSCSI writes: unsolicited data and the bursts asked for by R2T", "[iscsi]") {
  SessionParams p;
  p.immediate_data = true;
  p.initial_r2t = false;
  p.first_burst_length = 65536;
  p.max_burst_length = 262144;
  // 1 MiB: 8 KiB immediate, unsolicited Data-Out to 64 KiB, then R2Ts of 256 KiB.
  WritePlan w = plan_write(p, 1 << 20, 8192, false);
  REQUIRE(w.valid);
  CHECK(w.unsolicited == 65536);
  REQUIRE(w.solicited.size() == 4);
  CHECK((w.solicited[0].offset == 65536 && w.solicited[0].length == 262144));
  CHECK((w.solicited[3].offset == 65536 + 3 * 262144 && w.solicited[3].length == 196608));
  // F set: only the immediate data came unsolicited.
  w = plan_write(p, 16384, 4096, true);
  CHECK((w.valid && w.unsolicited == 4096 && w.solicited.size() == 1));
  CHECK(w.solicited[0].length == 12288);
  w = plan_write(p, 4096, 4096, true);  // all of it immediate
  CHECK((w.valid && w.solicited.empty()));
  // Rules broken: more immediate data than the command, or than a first
  // burst; immediate data not negotiated; unsolicited Data-Out under InitialR2T=Yes.
  CHECK_FALSE(plan_write(p, 4096, 8192, true).valid);
  CHECK_FALSE(plan_write(p, 1 << 20, 65537, true).valid);
  SessionParams strict;  // RFC defaults: InitialR2T=Yes
  CHECK_FALSE(plan_write(strict, 8192, 0, false).valid);
  strict.immediate_data = false;
  CHECK_FALSE(plan_write(strict, 8192, 512, true).valid);

  Numbers n{5, 9, 72};
  Bhs h = r2t(0x11, 0x0002000000000000ull, 0x22, 3, 65536, 262144, n);
  CHECK(h.opcode() == static_cast<uint8_t>(Op::r2t));
  CHECK(h.flags() == 0x80);
  CHECK(h.get32(20) == 0x22);
  CHECK(h.get32(24) == 5);
  CHECK(n.stat_sn == 5);  // an R2T takes no StatSN
  CHECK(h.get32(36) == 3);
  CHECK(h.get32(40) == 65536);
  CHECK(h.get32(44) == 262144);

  Bhs ping;
  ping.set_opcode(Op::nop_out, true);
  ping.set_initiator_task_tag(0x55);
  ping.set_lun(0x0003000000000000ull);
  h = nop_in(ping, 12, n);
  CHECK((h.opcode() == static_cast<uint8_t>(Op::nop_in) && h.initiator_task_tag() == 0x55));
  CHECK((h.get32(20) == kNoTag && h.data_segment_length() == 12 && h.get32(24) == 5));
  CHECK(h.lun() == 0x0003000000000000ull);
  h = logout_response(ping, n);
  CHECK((h.opcode() == static_cast<uint8_t>(Op::logout_response) && h.byte(2) == 0));
  CHECK(h.get32(24) == 6);
  h = task_response(ping, 1, n);
  CHECK((h.opcode() == static_cast<uint8_t>(Op::task_management_response) && h.byte(2) == 1));
  h = reject(RejectReason::protocol_error, n);
  CHECK((h.opcode() == static_cast<uint8_t>(Op::reject) && h.byte(2) == 0x04));
  CHECK((h.data_segment_length() == 48 && h.initiator_task_tag() == kNoTag));
  CHECK(n.stat_sn == 9);
}

TEST_CASE("iSCSI SendTargets: every portal of the cluster's target", "[iscsi]") {
  const std::string target = "iqn.2026-12.org.sve:c1";
  std::vector<Portal> portals = {{"192.0.2.1", 3260, 1}, {"2001:db8::2", 3261, 2}};
  auto a = send_targets("All", SessionType::discovery, target, portals);
  CHECK(a.error.empty());
  REQUIRE(a.pairs.size() == 3);
  CHECK(a.pairs[0] == TextPair{"TargetName", target});
  CHECK(a.pairs[1] == TextPair{"TargetAddress", "192.0.2.1:3260,1"});
  CHECK(a.pairs[2] == TextPair{"TargetAddress", "[2001:db8::2]:3261,2"});
  CHECK(send_targets(target, SessionType::discovery, target, portals).pairs.size() == 3);
  CHECK(send_targets("iqn.other", SessionType::discovery, target, portals).pairs.empty());
  CHECK(send_targets("", SessionType::normal, target, portals).pairs.size() == 3);
  CHECK_FALSE(send_targets("All", SessionType::normal, target, portals).error.empty());
  CHECK_FALSE(send_targets("", SessionType::discovery, target, portals).error.empty());
}

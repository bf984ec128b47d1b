// SCSI block commands for a vdisk (io/scsi/scsi_commands.hpp): each CDB
// planned as SPC-4 and SBC-3 say, the stack's part exact, the answers made
// here laid out byte by byte, and every malformed field refused with its
// sense.
#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "io/scsi/scsi_commands.hpp"
#include "scsi_test_cdb.hpp"
#include "io/scsi/unit_attentions.hpp"

using namespace sve;
using namespace sve::scsi;
using sve::scsi::test::Cdb;
using sve::scsi::test::be;

namespace {

LogicalUnit unit(uint64_t blocks = 2048, bool read_only = false) {
  LogicalUnit lu;
  lu.volume = 7;
  lu.blocks = blocks;
  lu.read_only = read_only;
  lu.serial = "600507680c800123";
  for (size_t i = 0; i < 8; ++i) lu.naa[i] = static_cast<uint8_t>(0x30 + i);
  return lu;
}

Plan run(const Cdb& c, const LogicalUnit& lu = unit()) { return plan(c.b.data(), 16, lu); }

bool refused(const Plan& p, const Sense& s) {
  return p.status == Status::check_condition && p.sense == s && !p.io && p.data_in.empty();
}

}  // namespace

TEST_CASE("SCSI: INQUIRY, its VPD pages and READ CAPACITY", "[scsi]") {
  CHECK(run(Cdb{0x00}).status == Status::good);  // TEST UNIT READY
  Plan p = run(Cdb{0x12}.be(3, 96, 2));
  REQUIRE(p.data_in.size() == 66);
  CHECK(be(p.data_in, 62, 2) == 0x04c0);  // claims SBC-3
  CHECK(p.data_in[0] == 0x00);
  CHECK(p.data_in[2] == 0x06);
  CHECK(std::string(p.data_in.begin() + 8, p.data_in.begin() + 16) == "SVE     ");
  CHECK(run(Cdb{0x12}.be(3, 5, 2)).data_in.size() == 5);  // cut to the allocation length
  CHECK(refused(run(Cdb{0x12, 0x00, 0x80}.be(3, 96, 2)), sense::invalid_field_in_cdb));

  p = run(Cdb{0x12, 0x01, 0x00}.be(3, 255, 2));
  REQUIRE(p.data_in.size() == 10);
  CHECK(p.data_in[1] == 0x00);
  CHECK(be(p.data_in, 2, 2) == 6);
  CHECK(p.data_in[5] == 0x80);
  CHECK(p.data_in[9] == 0xb2);
  p = run(Cdb{0x12, 0x01, 0x80}.be(3, 255, 2));
  CHECK(std::string(p.data_in.begin() + 4, p.data_in.end()) == "600507680c800123");
  p = run(Cdb{0x12, 0x01, 0x83}.be(3, 255, 2));
  REQUIRE(p.data_in.size() >= 16);
  CHECK(p.data_in[4] == 0x01);   // binary
  CHECK(p.data_in[5] == 0x03);   // NAA, of the logical unit
  CHECK(p.data_in[7] == 8);
  CHECK(p.data_in[8] == 0x30);   // NAA 3 first
  CHECK(p.data_in[15] == 0x37);
  CHECK(be(p.data_in, 2, 2) == p.data_in.size() - 4);
  p = run(Cdb{0x12, 0x01, 0xb0}.be(3, 255, 2));
  REQUIRE(p.data_in.size() == 64);
  CHECK(be(p.data_in, 8, 4) == kMaxTransferBlocks);
  p = run(Cdb{0x12, 0x01, 0xb1}.be(3, 255, 2));
  CHECK(be(p.data_in, 4, 2) == 1);  // non-rotating
  LogicalUnit thin = unit();
  thin.thin = true;
  CHECK(run(Cdb{0x12, 0x01, 0xb2}.be(3, 255, 2), thin).data_in[6] == 0x02);
  CHECK(refused(run(Cdb{0x12, 0x01, 0x99}.be(3, 255, 2)), sense::invalid_field_in_cdb));

  p = run(Cdb{0x25});
  REQUIRE(p.data_in.size() == 8);
  CHECK(be(p.data_in, 0, 4) == 2047);
  CHECK(be(p.data_in, 4, 4) == 512);
  CHECK(be(run(Cdb{0x25}, unit(1ull << 33)).data_in, 0, 4) == 0xffffffffu);  // use the 16-byte form
  CHECK(refused(run(Cdb{0x25}.be(2, 5, 4)), sense::invalid_field_in_cdb));  // an LBA without PMI
  p = run(Cdb{0x9e, 0x10}.be(10, 32, 4), unit(1ull << 33));
  REQUIRE(p.data_in.size() == 32);
  CHECK(be(p.data_in, 0, 8) == (1ull << 33) - 1);
  CHECK(be(p.data_in, 8, 4) == 512);
  CHECK(p.data_in[13] == kPhysicalExponent);
  CHECK(refused(run(Cdb{0x9e, 0x11}.be(10, 32, 4)), sense::invalid_field_in_cdb));
}

TEST_CASE("SCSI: reads and writes become one request of the stack, or their sense", "[scsi]") {
  Plan p = run(Cdb{0x28, 0x08}.be(2, 100, 4).be(7, 8, 2));  // READ(10), FUA
  CHECK(p.io);
  CHECK(p.op == IoOp::read);
  CHECK(p.offset == 100 * 512);
  CHECK(p.length == 8 * 512);
  CHECK(p.flags == io_flags::fua);
  CHECK(p.data_out == 0);
  p = run(Cdb{0x8a}.be(2, 2040, 8).be(10, 8, 4));  // WRITE(16) up to the last block
  CHECK(p.io);
  CHECK(p.op == IoOp::write);
  CHECK(p.offset == 2040 * 512);
  CHECK(p.data_out == 8 * 512);
  p = run(Cdb{0x0a}.be(1, 0, 3).at(4, 0));  // WRITE(6): 0 blocks means 256
  CHECK(p.length == 256 * 512);
  p = run(Cdb{0xa8}.be(2, 1, 4).be(6, 3, 4));  // READ(12)
  CHECK((p.offset == 512 && p.length == 3 * 512));
  p = run(Cdb{0x28}.be(2, 5, 4).be(7, 0, 2));  // nothing to transfer
  CHECK((p.status == Status::good && !p.io));

  CHECK(refused(run(Cdb{0x28}.be(2, 2041, 4).be(7, 8, 2)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x88}.be(2, ~0ull, 8).be(10, 2, 4)), sense::lba_out_of_range));  // wraps
  CHECK(refused(run(Cdb{0x28}.be(2, 2048, 4).be(7, 1, 2)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x88}.be(2, 0, 8).be(10, kMaxTransferBlocks + 1, 4), unit(1ull << 30)),
                sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x28, 0x20}.be(2, 0, 4).be(7, 1, 2)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x2a}.be(2, 0, 4).be(7, 1, 2), unit(2048, true)), sense::write_protected));
  CHECK(run(Cdb{0x28}.be(2, 0, 4).be(7, 1, 2), unit(2048, true)).io);  // reads go on

  // WRITE AND VERIFY (10, 12, 16): a write made durable (FUA) before GOOD.
  p = run(Cdb{0x2e, 0x02}.be(2, 16, 4).be(7, 2, 2));  // BYTCHK 1
  CHECK((p.io && p.op == IoOp::write && p.flags == io_flags::fua && p.data_out == 1024));
  p = run(Cdb{0xae}.be(2, 16, 4).be(6, 1, 4));
  CHECK((p.io && p.offset == 16 * 512 && p.flags == io_flags::fua));
  p = run(Cdb{0x8e}.be(2, 2047, 8).be(10, 1, 4));
  CHECK((p.io && p.op == IoOp::write && p.flags == io_flags::fua));
  CHECK(refused(run(Cdb{0x2e, 0x04}.be(2, 0, 4).be(7, 1, 2)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x8e}.be(2, 2048, 8).be(10, 1, 4)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x2e}.be(2, 0, 4).be(7, 1, 2), unit(2048, true)), sense::write_protected));

  // VERIFY: a read checked, not sent; BYTCHK 1 compares the range with as
  // much Data-Out, 3 every block with one block, 0 only reads.
  p = run(Cdb{0x2f, 0x02}.be(2, 8, 4).be(7, 4, 2));
  CHECK((p.io && p.op == IoOp::read && p.verify && p.compare && p.data_out == 4 * 512));
  p = run(Cdb{0xaf, 0x06}.be(2, 8, 4).be(6, 4, 4));
  CHECK((p.verify && p.compare && p.data_out == 512 && p.length == 4 * 512));
  p = run(Cdb{0x8f}.be(2, 2044, 8).be(10, 4, 4));
  CHECK((p.io && p.verify && !p.compare && p.data_out == 0));
  CHECK(refused(run(Cdb{0x2f, 0x04}.be(2, 0, 4).be(7, 1, 2)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x8f}.be(2, 2045, 8).be(10, 4, 4)), sense::lba_out_of_range));
  // PRE-FETCH (10, 16): a read of the range for the cache, nothing sent;
  // 0 blocks to the end of the medium; read-only units too; at most
  // kMaxPrefetchBytes.
  p = run(Cdb{0x34, 0x02}.be(2, 8, 4).at(6, 0x1f).be(7, 4, 2));  // IMMED, a group
  CHECK((p.io && p.op == IoOp::read && p.flow == Flow::prefetch && p.offset == 8 * 512 &&
         p.length == 4 * 512 && p.data_out == 0 && !p.verify));
  p = run(Cdb{0x90}.be(2, 2040, 8));
  CHECK((p.io && p.offset == 2040 * 512 && p.length == 8 * 512));
  CHECK(run(Cdb{0x90}.be(2, 2048, 8)).status == Status::good);  // nothing left to read
  CHECK_FALSE(run(Cdb{0x90}.be(2, 2048, 8)).io);
  CHECK(run(Cdb{0x34}.be(2, 0, 4).be(7, 4, 2), unit(2048, true)).io);
  CHECK(run(Cdb{0x90}.be(2, 0, 8), unit(1ull << 30)).length == kMaxPrefetchBytes);
  CHECK(refused(run(Cdb{0x34, 0x01}.be(2, 0, 4).be(7, 1, 2)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x90}.be(2, 2045, 8).be(10, 4, 4)), sense::lba_out_of_range));
  std::vector<uint8_t> medium(2048, 7), one(512, 7);
  CHECK(verify_data(medium.data(), 2048, medium.data(), 2048) == -1);
  CHECK(verify_data(one.data(), 512, medium.data(), 2048) == -1);
  medium[1500] = 8;
  CHECK(verify_data(one.data(), 512, medium.data(), 2048) == 1500);

  p = run(Cdb{0x35});  // SYNCHRONIZE CACHE(10): the whole vdisk
  CHECK((p.io && p.op == IoOp::flush));
  CHECK(refused(run(Cdb{0x91}.be(2, 4000, 8)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0xee}), sense::invalid_opcode));
  std::array<uint8_t, 6> short_cdb{0x00};
  CHECK(refused(plan(short_cdb.data(), 6, unit()), sense::invalid_field_in_cdb));
}

TEST_CASE("SCSI: MODE SENSE, REQUEST SENSE, REPORT LUNS and LUN fields", "[scsi]") {
  Plan p = run(Cdb{0x1a, 0x00, 0x08, 0x00, 255});  // MODE SENSE(6), caching
  REQUIRE(p.data_in.size() == 4 + 8 + 20);
  CHECK(p.data_in[0] == p.data_in.size() - 1);
  CHECK(p.data_in[2] == 0x10);  // DPOFUA, not write-protected
  CHECK(p.data_in[3] == 8);     // one block descriptor
  CHECK(be(p.data_in, 4, 4) == 2048);
  CHECK(be(p.data_in, 9, 3) == 512);
  CHECK(p.data_in[12] == 0x08);
  CHECK(p.data_in[14] & 0x04);  // WCE
  p = run(Cdb{0x1a, 0x08, 0x3f, 0x00, 255}, unit(2048, true));  // DBD, all pages, read-only
  CHECK(p.data_in[2] & 0x80);
  CHECK(p.data_in[3] == 0);
  CHECK(p.data_in.size() == 4 + 20 + 12);
  p = run(Cdb{0x5a, 0x00, 0x0a}.be(7, 255, 2));  // MODE SENSE(10), control
  REQUIRE(p.data_in.size() == 8 + 8 + 12);
  CHECK(be(p.data_in, 0, 2) == p.data_in.size() - 2);
  CHECK(p.data_in[16] == 0x0a);
  CHECK(p.data_in[16 + 5] == 0x40);  // TAS: another nexus's abort answers TASK ABORTED
  CHECK(p.data_in[16 + 2] == 0x20);  // TST 001b: a task set per I_T nexus
  p = run(Cdb{0x1a, 0x00, 0x48, 0x00, 255});  // changeable values: nothing
  CHECK((p.data_in[12] == 0x08 && p.data_in[14] == 0));
  CHECK(refused(run(Cdb{0x1a, 0x00, 0xc8, 0x00, 255}), Sense{0x05, 0x39, 0x00}));  // saved
  CHECK(refused(run(Cdb{0x1a, 0x00, 0x19, 0x00, 255}), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x1a, 0x00, 0x08, 0x01, 255}), sense::invalid_field_in_cdb));

  p = run(Cdb{0x03, 0x00, 0x00, 0x00, 252});
  REQUIRE(p.data_in.size() == 18);
  CHECK(p.data_in[0] == 0x70);
  CHECK(p.data_in[2] == 0);
  CHECK(refused(run(Cdb{0x03, 0x01}), sense::invalid_field_in_cdb));
  auto s = fixed_sense(sense::lba_out_of_range);
  CHECK((s[2] == 0x05 && s[7] == 10 && s[12] == 0x21 && s[13] == 0x00));
  CHECK(s[0] == 0x70);  // no INFORMATION: VALID clear
  auto with = fixed_sense(sense::miscompare, 0x01020304u);  // a miscompare's offset
  CHECK((with[0] == 0xf0 && with[3] == 1 && with[4] == 2 && with[5] == 3 && with[6] == 4));
  CHECK((with[2] == 0x0e && with[12] == 0x1d));

  auto luns = report_luns({0, 5, 300}, 1024);
  REQUIRE(luns.size() == 32);
  CHECK(be(luns, 0, 4) == 24);
  CHECK(be(luns, 16, 8) == 0x0005000000000000ull);
  CHECK(be(luns, 24, 8) == 0x412c000000000000ull);
  CHECK(report_luns({0, 5, 300}, 16).size() == 16);
  uint16_t lun = 0;
  CHECK((decode_lun(0x0005000000000000ull, lun) && lun == 5));
  CHECK((decode_lun(0x412c000000000000ull, lun) && lun == 300));
  CHECK_FALSE(decode_lun(0x0005000100000000ull, lun));  // a second level
  CHECK_FALSE(decode_lun(0x0105000000000000ull, lun));  // another bus
  CHECK_FALSE(decode_lun(0x8005000000000000ull, lun));  // logical unit addressing
}

TEST_CASE("SCSI: COMPARE AND WRITE is one request carrying both halves", "[scsi]") {
  Plan p = run(Cdb{0x89, 0x08}.be(2, 100, 8).at(13, 2));  // FUA
  CHECK(p.io);
  CHECK(p.op == IoOp::compare_and_write);
  CHECK(p.offset == 100 * 512);
  CHECK(p.length == 1024);
  CHECK(p.data_out == 2048);
  CHECK(p.flags == io_flags::fua);
  CHECK(refused(run(Cdb{0x89}.be(2, 0, 8).at(13, 0)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x89}.be(2, 0, 8).at(13, kMaxCompareAndWriteBlocks + 1)),
                sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x89, 0x20}.be(2, 0, 8).at(13, 1)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x89}.be(2, 2047, 8).at(13, 2)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x89}.be(2, 0, 8).at(13, 1), unit(2048, true)), sense::write_protected));
  CHECK(sense_of_error(EILSEQ, true) == sense::miscompare);
  CHECK(run(Cdb{0x12, 0x01, 0xb0}.be(3, 255, 2)).data_in[5] == kMaxCompareAndWriteBlocks);
}

TEST_CASE("SCSI: ORWRITE is one request the owner reads, ORs and writes", "[scsi]") {
  Plan p = run(Cdb{0x8b, 0x1a}.be(2, 100, 8).be(10, 3, 4));  // DPO, FUA, FUA_NV
  CHECK(p.io);
  CHECK(p.op == IoOp::or_write);
  CHECK(p.offset == 100 * 512);
  CHECK(p.length == 3 * 512);
  CHECK(p.data_out == 3 * 512);
  CHECK(p.flags == io_flags::fua);
  CHECK(run(Cdb{0x8b}.be(2, 100, 8)).flags == 0);
  CHECK_FALSE(run(Cdb{0x8b}.be(2, 0, 8).be(10, 0, 4)).io);  // 0 blocks: GOOD, nothing sent
  CHECK(refused(run(Cdb{0x8b, 0x20}.be(2, 0, 8).be(10, 1, 4)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x8b}.be(2, 2047, 8).be(10, 2, 4)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x8b}.be(2, 2049, 8)), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x8b}.be(2, 0, 8).be(10, kMaxTransferBlocks + 1, 4), unit(1u << 30)),
                sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x8b}.be(2, 0, 8).be(10, 1, 4), unit(2048, true)),
                sense::write_protected));
  // REPORT SUPPORTED OPERATION CODES names it, with the flags it takes.
  Plan one = run(Cdb{0xa3, 0x0c, 0x01, 0x8b}.be(6, 64, 4));
  REQUIRE(one.data_in.size() >= 6);
  CHECK(one.data_in[1] == 0x03);
  CHECK(one.data_in[5] == 0xfa);
}

TEST_CASE("SCSI: unit attentions are reported once, by the next command to their LUN", "[scsi]") {
  UnitAttentions ua;
  CHECK_FALSE(ua.take(0, 0x00));
  ua.establish(1, sense::capacity_changed);
  ua.establish(1, sense::capacity_changed);  // one pending per LUN and sense
  ua.establish(2, sense::lun_reset_occurred);
  ua.establish(1, sense::luns_changed);
  CHECK(ua.size() == 3);
  CHECK_FALSE(ua.take(0, 0x00));     // another LUN
  CHECK_FALSE(ua.take(1, 0x12));     // INQUIRY runs
  CHECK_FALSE(ua.take(1, 0xa0));     // so does REPORT LUNS
  CHECK(ua.take(1, 0x00) == sense::capacity_changed);  // oldest first
  CHECK(ua.take(1, 0x03) == sense::luns_changed);       // REQUEST SENSE takes it too
  CHECK_FALSE(ua.take(1, 0x28));
  CHECK(ua.take(2, 0x2a) == sense::lun_reset_occurred);
  CHECK(ua.empty());
  for (uint16_t lun = 0; lun < 200; ++lun) ua.establish(lun, sense::reset_occurred);
  CHECK(ua.size() == UnitAttentions::kMaxPending);
}

TEST_CASE("SCSI: a CONTROL byte that asks for ACA is refused, whatever the CDB's length",
          "[scsi]") {
  // INQUIRY says NormACA 0: NACA (bit 2 of the CDB's last byte) is an
  // invalid field, in a 6-, 10-, 12- or 16-byte CDB.
  Plan inquiry = run(Cdb{0x12}.be(3, 66, 2));
  REQUIRE(inquiry.data_in.size() > 3);
  CHECK((inquiry.data_in[3] & 0x20) == 0);
  CHECK(refused(run(Cdb{0x00}.at(5, 0x04)), sense::invalid_field_in_cdb));  // TEST UNIT READY
  CHECK(refused(run(Cdb{0x28}.be(2, 0, 4).be(7, 1, 2).at(9, 0x04)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0xa8}.be(2, 0, 4).be(6, 1, 4).at(11, 0x04)), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x88}.be(2, 0, 8).be(10, 1, 4).at(15, 0x04)), sense::invalid_field_in_cdb));
  // The other bits of CONTROL (vendor specific, LINK obsolete) and the
  // bytes past a short CDB are not looked at.
  CHECK(run(Cdb{0x00}.at(5, 0xc0)).status == Status::good);
  CHECK(run(Cdb{0x28}.be(2, 0, 4).be(7, 1, 2).at(15, 0x04)).io);
}

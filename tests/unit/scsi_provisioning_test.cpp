// SCSI logical block provisioning and the commands hosts probe with
// (io/scsi: scsi_provisioning.cpp, scsi_mode.cpp, scsi_opcodes.cpp): WRITE
// SAME, UNMAP and its parameter list, GET LBA STATUS, MODE SELECT, REPORT
// SUPPORTED OPERATION CODES, START STOP UNIT and PREVENT ALLOW; what a thin
// unit says of itself, and every malformed field refused with its sense.
#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include "io/scsi/scsi_commands.hpp"
#include "scsi_test_cdb.hpp"

using namespace sve;
using namespace sve::scsi;
using sve::scsi::test::Cdb;
using sve::scsi::test::be;

namespace {

LogicalUnit unit(bool thin, uint64_t blocks = 4096, bool read_only = false) {
  LogicalUnit lu;
  lu.volume = 3;
  lu.blocks = blocks;
  lu.thin = thin;
  lu.read_only = read_only;
  lu.serial = "0123456789abcdef";
  return lu;
}

Plan run(const Cdb& c, const LogicalUnit& lu) { return plan(c.b.data(), 16, lu); }

bool refused(const Plan& p, const Sense& s) {
  return p.status == Status::check_condition && p.sense == s && !p.io && p.data_in.empty() &&
         p.data_out == 0;
}

void put(std::vector<uint8_t>& d, size_t at, uint64_t v, size_t width) {
  for (size_t k = 0; k < width; ++k) d[at + k] = static_cast<uint8_t>(v >> (8 * (width - 1 - k)));
}

// An UNMAP parameter list of these (lba, blocks) descriptors.
std::vector<uint8_t> unmap_list(std::initializer_list<std::pair<uint64_t, uint32_t>> ranges) {
  std::vector<uint8_t> d(8 + 16 * ranges.size(), 0);
  put(d, 0, d.size() - 2, 2);
  put(d, 2, d.size() - 8, 2);
  size_t at = 8;
  for (auto [lba, blocks] : ranges) {
    put(d, at, lba, 8);
    put(d, at + 8, blocks, 4);
    at += 16;
  }
  return d;
}

}  // namespace

TEST_CASE("SCSI provisioning: a thin unit says so, a full one offers no UNMAP", "[scsi]") {
  const LogicalUnit thin = unit(true), full = unit(false);
  Plan p = run(Cdb{0x9e, 0x10}.be(10, 32, 4), thin);  // READ CAPACITY(16)
  CHECK(p.data_in[14] == 0xc0);                       // LBPME, LBPRZ
  CHECK(run(Cdb{0x9e, 0x10}.be(10, 32, 4), full).data_in[14] == 0);
  p = run(Cdb{0x12, 0x01, 0xb2}.be(3, 255, 2), thin);
  REQUIRE(p.data_in.size() == 8);
  CHECK(p.data_in[5] == 0xe4);  // LBPU, LBPWS, LBPWS10, LBPRZ
  CHECK(p.data_in[6] == 0x02);
  CHECK(run(Cdb{0x12, 0x01, 0xb2}.be(3, 255, 2), full).data_in[5] == 0);
  p = run(Cdb{0x12, 0x01, 0xb0}.be(3, 255, 2), thin);
  REQUIRE(p.data_in.size() == 64);
  CHECK(p.data_in[4] == 0x01);  // WSNZ
  CHECK(be(p.data_in, 20, 4) == 0xffffffffu);
  CHECK(be(p.data_in, 24, 4) == kMaxUnmapDescriptors);
  CHECK(be(p.data_in, 36, 8) == kMaxWriteSameBlocks);
  CHECK(be(run(Cdb{0x12, 0x01, 0xb0}.be(3, 255, 2), full).data_in, 24, 4) == 0);
  // UNMAP on a fully provisioned unit is not a command it has.
  CHECK(refused(run(Cdb{0x42}.be(7, 24, 2), full), sense::invalid_opcode));
}

TEST_CASE("SCSI provisioning: WRITE SAME plans one block repeated, or zeros", "[scsi]") {
  const LogicalUnit thin = unit(true), full = unit(false);
  Plan p = run(Cdb{0x41, 0x08}.be(2, 100, 4).be(7, 16, 2), thin);  // (10), UNMAP
  CHECK(p.io);
  CHECK(p.flow == Flow::write_same);
  CHECK(p.op == IoOp::write);
  CHECK(p.unmap);
  CHECK(p.offset == 100 * 512);
  CHECK(p.length == 16 * 512);
  CHECK(p.data_out == 512);
  p = run(Cdb{0x93, 0x00}.be(2, 4000, 8).be(10, 96, 4), full);  // (16), to the end
  CHECK((p.io && !p.unmap && p.length == 96 * 512 && p.data_out == 512));
  p = run(Cdb{0x93, 0x01}.be(2, 0, 8).be(10, 8, 4), full);  // NDOB: zeros, no Data-Out
  CHECK((p.io && p.data_out == 0));
  CHECK(refused(run(Cdb{0x41, 0x08}.be(2, 0, 4).be(7, 1, 2), full), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41, 0x10}.be(2, 0, 4).be(7, 1, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41, 0x18}.be(2, 0, 4).be(7, 1, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41, 0x20}.be(2, 0, 4).be(7, 1, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41, 0x02}.be(2, 0, 4).be(7, 1, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41, 0x01}.be(2, 0, 4).be(7, 1, 2), thin), sense::invalid_field_in_cdb));
  // 0 blocks (WSNZ); past the end, before that; too many; read-only.
  CHECK(refused(run(Cdb{0x41}.be(2, 0, 4).be(7, 0, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41}.be(2, 4097, 4).be(7, 0, 2), thin), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x41}.be(2, 4095, 4).be(7, 2, 2), thin), sense::lba_out_of_range));
  CHECK(refused(run(Cdb{0x93}.be(2, ~0ull, 8).be(10, 1, 4), thin), sense::lba_out_of_range));
  const LogicalUnit big = unit(true, 1ull << 32);
  CHECK(run(Cdb{0x93}.be(2, 0, 8).be(10, kMaxWriteSameBlocks, 4), big).io);
  CHECK(refused(run(Cdb{0x93}.be(2, 0, 8).be(10, kMaxWriteSameBlocks + 1, 4), big),
                sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x41}.be(2, 0, 4).be(7, 1, 2), unit(true, 4096, true)),
                sense::write_protected));
}

TEST_CASE("SCSI provisioning: UNMAP's parameter list, checked whole, merged", "[scsi]") {
  const LogicalUnit thin = unit(true);
  Plan p = run(Cdb{0x42}.be(7, 40, 2), thin);
  CHECK((p.io && p.flow == Flow::unmap && p.op == IoOp::write_zeroes && p.data_out == 40));
  CHECK(run(Cdb{0x42}.be(7, 0, 2), thin).status == Status::good);  // nothing to unmap
  CHECK(!run(Cdb{0x42}.be(7, 0, 2), thin).io);
  CHECK(refused(run(Cdb{0x42}.be(7, 7, 2), thin), sense::parameter_list_length_error));
  CHECK(refused(run(Cdb{0x42, 0x01}.be(7, 24, 2), thin), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0x42}.be(7, 24, 2), unit(true, 4096, true)), sense::write_protected));

  std::vector<LbaRange> ranges;
  Sense why;
  auto list = unmap_list({{100, 8}, {0, 4}, {104, 16}, {4, 0}, {4, 2}, {2, 1}, {4095, 1}, {4096, 0}});
  REQUIRE(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(ranges == std::vector<LbaRange>{{0, 6}, {100, 20}, {4095, 1}});
  list = unmap_list({{10, 1}, {11, 1}, {12, 1}});  // touching: one range
  REQUIRE(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(ranges == std::vector<LbaRange>{{10, 3}});
  list = unmap_list({});
  REQUIRE(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(ranges.empty());
  // One descriptor past the end refuses the whole list.
  list = unmap_list({{0, 8}, {4090, 7}});
  CHECK_FALSE(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(why == sense::lba_out_of_range);
  CHECK(ranges.empty());
  list = unmap_list({{~0ull, 2}});
  CHECK_FALSE(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(why == sense::lba_out_of_range);
  // The descriptors the list says it has and that came; a partial one is not.
  list = unmap_list({{0, 8}, {16, 8}});
  CHECK(unmap_ranges(list.data(), list.size() - 1, thin, ranges, why));
  CHECK(ranges == std::vector<LbaRange>{{0, 8}});
  put(list, 2, 16, 2);
  CHECK(unmap_ranges(list.data(), list.size(), thin, ranges, why));
  CHECK(ranges == std::vector<LbaRange>{{0, 8}});
  CHECK_FALSE(unmap_ranges(list.data(), 7, thin, ranges, why));
  CHECK(why == sense::parameter_list_length_error);
}

TEST_CASE("SCSI provisioning: GET LBA STATUS asks the stack and says what it answered", "[scsi]") {
  const LogicalUnit thin = unit(true, 1ull << 24);
  Plan p = run(Cdb{0x9e, 0x12}.be(2, 64, 8).be(10, 24, 4), thin);
  CHECK((p.io && p.flow == Flow::lba_status && p.op == IoOp::block_status));
  CHECK(p.offset == 64 * 512);
  CHECK(p.length == (1ull << 30));  // at most a GiB asked at once
  CHECK(p.allocation == 24);
  CHECK(run(Cdb{0x9e, 0x12}.be(2, (1 << 24) - 1, 8).be(10, 24, 4), thin).length == 512);
  CHECK(refused(run(Cdb{0x9e, 0x12}.be(2, 1 << 24, 8).be(10, 24, 4), thin),
                sense::lba_out_of_range));
  CHECK(!run(Cdb{0x9e, 0x12}.be(2, 0, 8).be(10, 0, 4), thin).io);

  auto d = lba_status_data(64, {{4096, 0}, {8192, status_flags::hole | status_flags::zero}}, 1024);
  REQUIRE(d.size() == 8 + 32);
  CHECK(be(d, 0, 4) == d.size() - 4);
  CHECK(be(d, 8, 8) == 64);
  CHECK(be(d, 16, 4) == 8);
  CHECK(d[20] == 0x00);  // mapped
  CHECK(be(d, 24, 8) == 72);
  CHECK(be(d, 32, 4) == 16);
  CHECK(d[36] == 0x01);  // deallocated
  d = lba_status_data(64, {{4096, 0}, {8192, status_flags::hole}}, 24);
  CHECK(d.size() == 24);
  CHECK(be(d, 0, 4) == 36);  // (what there is, not what fits)
}

TEST_CASE("SCSI: MODE SELECT takes a list that changes nothing, refuses any change", "[scsi]") {
  const LogicalUnit lu = unit(false);
  Plan p = run(Cdb{0x15, 0x10, 0, 0, 32}, lu);
  CHECK((!p.io && p.flow == Flow::mode_select && p.data_out == 32 && !p.mode_ten));
  CHECK(run(Cdb{0x55, 0x10}.be(7, 40, 2), lu).mode_ten);
  CHECK(run(Cdb{0x15, 0x10, 0, 0, 0}, lu).flow == Flow::one);  // an empty list: nothing to do
  CHECK(refused(run(Cdb{0x15, 0x11, 0, 0, 32}, lu), sense::invalid_field_in_cdb));  // SP
  CHECK(refused(run(Cdb{0x15, 0x00, 0, 0, 32}, lu), sense::invalid_field_in_cdb));  // not PF
  CHECK(refused(run(Cdb{0x55, 0x10}.be(7, kMaxModeSelectBytes + 1, 2), lu),
                sense::invalid_field_in_cdb));

  // What MODE SENSE(6) says, sent back: taken; with WCE cleared: refused.
  Plan sensed = run(Cdb{0x1a, 0x00, 0x3f, 0x00, 255}, lu);
  std::vector<uint8_t> list = sensed.data_in;
  list[0] = 0;  // (the mode data length is reserved in MODE SELECT)
  CHECK(mode_select(list.data(), list.size(), false, lu) == sense::none);
  list[12] |= 0x80;  // PS is ignored
  CHECK(mode_select(list.data(), list.size(), false, lu) == sense::none);
  std::vector<uint8_t> changed = list;
  changed[14] &= ~0x04;  // the caching page's WCE
  CHECK(mode_select(changed.data(), changed.size(), false, lu) ==
        sense::invalid_field_in_parameter_list);
  changed = list;
  put(changed, 9, 4096, 3);  // another block length
  CHECK(mode_select(changed.data(), changed.size(), false, lu) ==
        sense::invalid_field_in_parameter_list);
  changed = list;
  changed[12] = 0x1c;  // a page not kept here
  CHECK(mode_select(changed.data(), changed.size(), false, lu) ==
        sense::invalid_field_in_parameter_list);
  CHECK(mode_select(list.data(), list.size() - 3, false, lu) ==
        sense::parameter_list_length_error);  // a page cut short
  CHECK(mode_select(list.data(), 3, false, lu) == sense::parameter_list_length_error);
  // MODE SELECT(10): the header only.
  std::vector<uint8_t> ten(8, 0);
  CHECK(mode_select(ten.data(), ten.size(), true, lu) == sense::none);
  ten[7] = 16;  // a long descriptor that is not there
  CHECK(mode_select(ten.data(), ten.size(), true, lu) == sense::invalid_field_in_parameter_list);
}

TEST_CASE("SCSI: REPORT SUPPORTED OPERATION CODES lists what plan() takes", "[scsi]") {
  const LogicalUnit lu = unit(true);
  Plan all = run(Cdb{0xa3, 0x0c, 0x00}.be(6, 65535, 4), lu);
  REQUIRE(all.status == Status::good);
  REQUIRE(all.data_in.size() > 4);
  CHECK(be(all.data_in, 0, 4) == all.data_in.size() - 4);
  const size_t n = (all.data_in.size() - 4) / 8;
  CHECK(n >= 30);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* d = all.data_in.data() + 4 + 8 * i;
    const uint8_t op = d[0];
    const bool has_action = d[5] & 0x01;
    const uint16_t action = static_cast<uint16_t>(d[2] << 8 | d[3]);
    INFO("opcode " << int(op) << " action " << action);
    // Each one listed is one plan() knows (REPORT LUNS is the transport's).
    if (op != 0xa0) {
      Cdb probe{op};
      if (has_action) probe.b[1] = static_cast<uint8_t>(action);
      CHECK_FALSE(run(probe, lu).sense == sense::invalid_opcode);
    }
    // And asking for it alone answers its CDB's usage.
    Plan one = run(Cdb{0xa3, 0x0c, static_cast<uint8_t>(has_action ? 2 : 1), op}
                       .be(4, action, 2).be(6, 512, 4), lu);
    REQUIRE(one.status == Status::good);
    CHECK((one.data_in[1] & 0x07) == 0x03);
    CHECK(one.data_in[4] == op);
    CHECK(be(one.data_in, 2, 2) == be(all.data_in, 4 + 8 * i + 6, 2));
    // By the wrong option: refused.
    CHECK(run(Cdb{0xa3, 0x0c, static_cast<uint8_t>(has_action ? 1 : 2), op}
                  .be(4, action, 2).be(6, 512, 4), lu).status == Status::check_condition);
  }
  Plan none = run(Cdb{0xa3, 0x0c, 0x01, 0xe7}.be(6, 512, 4), lu);  // not a command here
  CHECK((none.status == Status::good && (none.data_in[1] & 0x07) == 0x01));
  Plan rctd = run(Cdb{0xa3, 0x0c, 0x80}.be(6, 65535, 4), lu);  // with timeouts
  CHECK(rctd.data_in.size() == 4 + n * 20);
  CHECK(rctd.data_in[4 + 5] & 0x02);
  CHECK(refused(run(Cdb{0xa3, 0x0c, 0x04}.be(6, 512, 4), lu), sense::invalid_field_in_cdb));
  CHECK(refused(run(Cdb{0xa3, 0x0d}.be(6, 512, 4), lu), sense::invalid_field_in_cdb));
  CHECK(run(Cdb{0xa3, 0x0c, 0x00}.be(6, 10, 4), lu).data_in.size() == 10);
}

TEST_CASE("SCSI: START STOP UNIT and PREVENT ALLOW on a unit that is not removable", "[scsi]") {
  const LogicalUnit lu = unit(false);
  CHECK(run(Cdb{0x1b, 0, 0, 0, 0x01}, lu).status == Status::good);  // start
  CHECK(run(Cdb{0x1b, 0x01, 0, 0, 0x00}, lu).status == Status::good);  // stop, IMMED
  CHECK(refused(run(Cdb{0x1b, 0, 0, 0, 0x02}, lu), sense::invalid_field_in_cdb));  // LOEJ
  CHECK(refused(run(Cdb{0x1b, 0, 0, 0, 0x30}, lu), sense::invalid_field_in_cdb));  // power
  CHECK(run(Cdb{0x1e, 0, 0, 0, 0x01}, lu).status == Status::good);
  CHECK(run(Cdb{0x1e, 0, 0, 0, 0x00}, lu).status == Status::good);
  CHECK(refused(run(Cdb{0x1e, 0, 0, 0, 0x02}, lu), sense::invalid_field_in_cdb));
}

#include "io/scsi/scsi_commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/scsi/scsi_internal.hpp"
#include "io/scsi/scsi_reservations.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;

void put_text(std::vector<uint8_t>& v, size_t at, size_t width, const std::string& text) {
  for (size_t i = 0; i < width; ++i) v[at + i] = i < text.size() ? text[i] : ' ';
}

std::vector<uint8_t> standard_inquiry() {
  std::vector<uint8_t> d(66, 0);
  d[0] = 0x00;        // connected, direct-access block device
  d[2] = 0x06;        // SPC-4
  d[3] = 0x12;        // HiSup, response data format 2
  d[4] = 66 - 5;      // additional length
  d[5] = 0x10;        // TPGS 01b: implicit asymmetric access (scsi_alua.cpp)
  d[7] = 0x02;        // CmdQue
  put_text(d, 8, 8, "SVE");
  put_text(d, 16, 16, "vdisk");
  put_text(d, 32, 4, "0001");
  // Version descriptors: SAM-5, SPC-4, SBC-3, iSCSI.
  put16(d, 58, 0x00a0);
  put16(d, 60, 0x0460);
  put16(d, 62, 0x04c0);
  put16(d, 64, 0x0960);
  return d;
}

std::vector<uint8_t> vpd_page(uint8_t page, const LogicalUnit& lu, bool& known) {
  known = true;
  std::vector<uint8_t> d(4, 0);
  d[1] = page;
  switch (page) {
    case 0x00:
      for (uint8_t p : {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) d.push_back(p);
      break;
    case 0x80:
      d.insert(d.end(), lu.serial.begin(), lu.serial.end());
      break;
    case 0x83: {
      // NAA 3 (locally assigned), binary, of the logical unit.
      d.insert(d.end(), {0x01, 0x03, 0x00, static_cast<uint8_t>(lu.naa.size())});
      d.insert(d.end(), lu.naa.begin(), lu.naa.end());
      // T10 vendor identification, ASCII: the vendor and the serial.
      std::string t10 = "SVE     " + lu.serial;
      d.insert(d.end(), {0x02, 0x01, 0x00, static_cast<uint8_t>(t10.size())});
      d.insert(d.end(), t10.begin(), t10.end());
      auto port = alua_designators(lu);
      d.insert(d.end(), port.begin(), port.end());
      break;
    }
    case 0xb0:  // block limits
      d.resize(64, 0);
      d[4] = 0x01;                      // WSNZ: a WRITE SAME of 0 blocks is refused
      put16(d, 6, 4096 / kBlockBytes);  // optimal transfer length granularity
      put32(d, 8, kMaxTransferBlocks);
      put32(d, 12, (1u << 20) / kBlockBytes);  // optimal transfer length
      if (lu.thin) {
        put32(d, 20, 0xffffffffu);           // maximum unmap LBA count: any
        put32(d, 24, kMaxUnmapDescriptors);  // maximum unmap block descriptors
        put32(d, 28, 4096 / kBlockBytes);    // optimal unmap granularity
      }
      d[5] = kMaxCompareAndWriteBlocks;
      put64(d, 36, kMaxWriteSameBlocks);
      break;
    case 0xb1:  // block device characteristics
      d.resize(64, 0);
      put16(d, 4, 0x0001);  // non-rotating medium
      break;
    case 0xb2:  // logical block provisioning
      d.resize(8, 0);
      // Thin: UNMAP, WRITE SAME(16) and (10) with UNMAP; unmapped blocks
      // read as zeros (LBPRZ). No anchored state.
      d[5] = lu.thin ? 0xe4 : 0x00;
      d[6] = lu.thin ? 0x02 : 0x00;  // thin or full provisioning
      break;
    default:
      known = false;
      return {};
  }
  put16(d, 2, static_cast<uint16_t>(d.size() - 4));
  return d;
}

// READ and WRITE of every size, and WRITE AND VERIFY: their LBA, length
// and flags. WRITE AND VERIFY is a write made durable before it completes
// (FUA): what reached the back end is what came; with BYTCHK the data is
// compared with itself, which a write that succeeded always matches.
Plan transfer(const uint8_t* cdb, uint8_t op, const LogicalUnit& lu) {
  const bool verify = op == kWriteVerify10 || op == kWriteVerify12 || op == kWriteVerify16;
  const bool write =
      verify || op == kWrite6 || op == kWrite10 || op == kWrite12 || op == kWrite16;
  uint64_t lba = 0;
  uint64_t blocks = 0;
  bool fua = false;
  switch (op) {
    case kRead6:
    case kWrite6:
      lba = (uint64_t{cdb[1] & 0x1fu} << 16) | be16(cdb + 2);
      blocks = cdb[4] ? cdb[4] : 256;  // (0 means 256 in the six-byte form)
      break;
    case kRead10:
    case kWrite10:
    case kWriteVerify10:
      lba = be32(cdb + 2);
      blocks = be16(cdb + 7);
      break;
    case kRead12:
    case kWrite12:
    case kWriteVerify12:
      lba = be32(cdb + 2);
      blocks = be32(cdb + 6);
      break;
    default:  // 16
      lba = be64(cdb + 2);
      blocks = be32(cdb + 10);
      break;
  }
  if (op != kRead6 && op != kWrite6) {
    if (cdb[1] & 0xe0) return check(sense::invalid_field_in_cdb);  // RD/WRPROTECT: no protection
    fua = cdb[1] & 0x08;
  }
  if (verify) {
    if ((cdb[1] >> 1 & 0x03) > 1) return check(sense::invalid_field_in_cdb);  // BYTCHK 0 or 1
    fua = true;
  }
  if (blocks > kMaxTransferBlocks) return check(sense::invalid_field_in_cdb);
  if (lba > lu.blocks || blocks > lu.blocks - lba) return check(sense::lba_out_of_range);
  if (write && lu.read_only) return check(sense::write_protected);
  Plan p;
  if (blocks == 0) return p;  // nothing to transfer: GOOD
  p.io = true;
  p.op = write ? IoOp::write : IoOp::read;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.flags = fua ? io_flags::fua : 0;
  p.data_out = write ? p.length : 0;
  return p;
}

// VERIFY (10, 12, 16): the range is read through the stack (the medium
// answers for every block); with BYTCHK 1 its data is compared with the
// Data-Out, with BYTCHK 3 every block with the one block sent.
Plan verify(const uint8_t* cdb, uint8_t op, const LogicalUnit& lu) {
  const uint64_t lba = op == kVerify16 ? be64(cdb + 2) : be32(cdb + 2);
  const uint64_t blocks = op == kVerify10 ? be16(cdb + 7) : op == kVerify12 ? be32(cdb + 6)
                                                                            : be32(cdb + 10);
  const uint8_t bytchk = cdb[1] >> 1 & 0x03;
  if ((cdb[1] & 0xe0) || bytchk == 2) return check(sense::invalid_field_in_cdb);
  if (blocks > kMaxTransferBlocks) return check(sense::invalid_field_in_cdb);
  if (lba > lu.blocks || blocks > lu.blocks - lba) return check(sense::lba_out_of_range);
  Plan p;
  if (blocks == 0) return p;
  p.io = true;
  p.op = IoOp::read;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.verify = true;
  p.compare = bytchk != 0;
  p.data_out = bytchk == 1 ? p.length : bytchk == 3 ? kBlockBytes : 0;
  return p;
}

// PRE-FETCH (10, 16): the range is read through the stack and the data
// dropped, so that the cache holds it (Flow::prefetch). Answered GOOD,
// never CONDITION MET: nothing promises the blocks stay (SBC-3 lets a
// device say GOOD when they may not fit). A length of 0 means to the end
// of the medium; at most kMaxPrefetchBytes are read. IMMED is taken, and
// the command answered once the reads are done (which IMMED allows).
Plan prefetch(const uint8_t* cdb, bool sixteen, const LogicalUnit& lu) {
  if (cdb[1] & 0xfd) return check(sense::invalid_field_in_cdb);
  const uint64_t lba = sixteen ? be64(cdb + 2) : be32(cdb + 2);
  uint64_t blocks = sixteen ? be32(cdb + 10) : be16(cdb + 7);
  if (lba > lu.blocks || blocks > lu.blocks - lba) return check(sense::lba_out_of_range);
  if (blocks == 0) blocks = lu.blocks - lba;
  blocks = std::min<uint64_t>(blocks, kMaxPrefetchBytes / kBlockBytes);
  Plan p;
  if (blocks == 0) return p;  // (at the end of the medium: nothing to read)
  p.io = true;
  p.op = IoOp::read;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.flow = Flow::prefetch;
  return p;
}

// COMPARE AND WRITE: one request that the vdisk's owner runs atomically
// (the atomic facility); its Data-Out is the data the range must hold,
// then the data to write there.
Plan compare_and_write(const uint8_t* cdb, const LogicalUnit& lu) {
  if (cdb[1] & 0xe0) return check(sense::invalid_field_in_cdb);  // WRPROTECT
  const uint64_t lba = be64(cdb + 2);
  const uint64_t blocks = cdb[13];
  // (0 blocks is refused, as Linux's target does: libiscsi sends 256 as 0
  // in this one-byte field and wants it refused.)
  if (blocks == 0 || blocks > kMaxCompareAndWriteBlocks) return check(sense::invalid_field_in_cdb);
  if (!in_range(lba, blocks, lu)) return check(sense::lba_out_of_range);
  if (lu.read_only) return check(sense::write_protected);
  Plan p;
  p.io = true;
  p.op = IoOp::compare_and_write;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.flags = (cdb[1] & 0x08) ? io_flags::fua : 0;
  p.data_out = 2 * p.length;
  return p;
}

// ORWRITE(16): its Data-Out ORed into the range, which the vdisk's owner
// reads and writes as one uninterrupted action (the atomic facility), so
// that no write of the range in between is lost. DPO and FUA_NV are taken
// (nothing to do); ORPROTECT is refused, as every protection field is.
Plan or_write(const uint8_t* cdb, const LogicalUnit& lu) {
  if (cdb[1] & 0xe0) return check(sense::invalid_field_in_cdb);
  const uint64_t lba = be64(cdb + 2);
  const uint64_t blocks = be32(cdb + 10);
  if (blocks > kMaxTransferBlocks) return check(sense::invalid_field_in_cdb);
  if (!in_range(lba, blocks, lu)) return check(sense::lba_out_of_range);
  if (lu.read_only) return check(sense::write_protected);
  Plan p;
  if (blocks == 0) return p;  // nothing to write: GOOD
  p.io = true;
  p.op = IoOp::or_write;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.flags = (cdb[1] & 0x08) ? io_flags::fua : 0;
  p.data_out = p.length;
  return p;
}

Plan synchronize(const uint8_t* cdb, bool sixteen, const LogicalUnit& lu) {
  const uint64_t lba = sixteen ? be64(cdb + 2) : be32(cdb + 2);
  const uint64_t blocks = sixteen ? be32(cdb + 10) : be16(cdb + 7);
  if (lba > lu.blocks || blocks > lu.blocks - lba) return check(sense::lba_out_of_range);
  Plan p;
  p.io = true;
  p.op = IoOp::flush;  // (the stack flushes the whole vdisk)
  return p;
}

// START STOP UNIT: a vdisk neither spins down nor ejects. START (and
// stop) are taken and change nothing: it keeps serving, as a disk array's
// LUN does; a load or eject (LOEJ) of a medium that is not removable and
// any power condition but START_VALID are refused.
Plan start_stop(const uint8_t* cdb) {
  const uint8_t power_condition = cdb[4] >> 4;
  if (power_condition != 0 || (cdb[4] & 0x02)) return check(sense::invalid_field_in_cdb);
  return Plan{};
}

}  // namespace

Sense sense_of_error(int error, bool write) {
  switch (error) {
    case EROFS:
    case EPERM: return sense::write_protected;
    case ENOSPC: return sense::out_of_space;
    case EILSEQ: return sense::miscompare;  // (COMPARE AND WRITE)
    case EINVAL: return sense::lba_out_of_range;
    case EAGAIN:
    case EBUSY: return sense::not_ready;
    default: return write ? sense::write_error : sense::medium_error;
  }
}

std::vector<uint8_t> fixed_sense(const Sense& s, std::optional<uint32_t> information) {
  std::vector<uint8_t> d(18, 0);
  d[0] = 0x70;  // current error, fixed format
  d[2] = s.key & 0x0f;
  if (information) {
    d[0] |= 0x80;  // VALID: the INFORMATION field means something
    for (int i = 0; i < 4; ++i) d[3 + i] = static_cast<uint8_t>(*information >> (24 - 8 * i));
  }
  d[7] = 10;    // additional sense length
  d[12] = s.asc;
  d[13] = s.ascq;
  return d;
}

// A CDB's length by its operation code's group (SPC-4 4.2.5.1); 0 for the
// groups with none fixed (variable length, reserved, vendor specific).
size_t cdb_length(uint8_t op) {
  switch (op >> 5) {
    case 0: return 6;
    case 1:
    case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0;
  }
}

Plan plan(const uint8_t* cdb, size_t cdb_bytes, const LogicalUnit& lu, const Nexus* who) {
  if (cdb_bytes < 16) return check(sense::invalid_field_in_cdb);  // (iSCSI's CDB field)
  const uint8_t op = cdb[0];
  if (auto refused = refused_by_access_state(cdb, lu)) return check(*refused);
  if (who && lu.reservations && conflicts(cdb, *lu.reservations, *who)) {
    Plan p;
    p.status = Status::reservation_conflict;
    return p;
  }
  // No ACA here (INQUIRY's NormACA is 0): a command whose CONTROL byte
  // asks for it (NACA) is refused, as any other field of its CDB it
  // cannot honour (after the checks that come before the CDB's fields).
  if (size_t n = cdb_length(op); n && (cdb[n - 1] & kControlNaca))
    return check(sense::invalid_field_in_cdb);
  switch (op) {
    case kPersistentReserveIn:
    case kPersistentReserveOut:
    case kReserve6:
    case kRelease6:
    case kReserve10:
    case kRelease10: return plan_reservation(cdb, lu.reservations.get());
    case kTestUnitReady: return Plan{};
    case kRequestSense:
      if (cdb[1] & 0x01) return check(sense::invalid_field_in_cdb);  // descriptor format
      return answer(fixed_sense(sense::none), cdb[4]);
    case kInquiry: {
      const bool evpd = cdb[1] & 0x01;
      const uint32_t allocation = be16(cdb + 3);
      if (!evpd) {
        if (cdb[2] != 0) return check(sense::invalid_field_in_cdb);
        return answer(standard_inquiry(), allocation);
      }
      bool known = false;
      auto page = vpd_page(cdb[2], lu, known);
      if (!known) return check(sense::invalid_field_in_cdb);
      return answer(std::move(page), allocation);
    }
    case kReadCapacity10: {
      if (!(cdb[8] & 0x01) && be32(cdb + 2) != 0) return check(sense::invalid_field_in_cdb);
      std::vector<uint8_t> d(8, 0);
      uint64_t last = lu.blocks ? lu.blocks - 1 : 0;
      put32(d, 0, last > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(last));
      put32(d, 4, kBlockBytes);
      return answer(std::move(d), 8);
    }
    case kServiceActionIn16: {
      if ((cdb[1] & 0x1f) == kGetLbaStatus) return plan_get_lba_status(cdb, lu);
      if ((cdb[1] & 0x1f) != kReadCapacity16) return check(sense::invalid_field_in_cdb);
      std::vector<uint8_t> d(32, 0);
      put64(d, 0, lu.blocks ? lu.blocks - 1 : 0);
      put32(d, 8, kBlockBytes);
      d[13] = kPhysicalExponent;  // logical blocks per physical block exponent
      if (lu.thin) d[14] = 0xc0;  // LBPME, LBPRZ
      return answer(std::move(d), be32(cdb + 10));
    }
    case kModeSense6: return plan_mode_sense(cdb, false, lu);
    case kModeSense10: return plan_mode_sense(cdb, true, lu);
    case kModeSelect6: return plan_mode_select(cdb, false, lu);
    case kModeSelect10: return plan_mode_select(cdb, true, lu);
    case kWriteSame10: return plan_write_same(cdb, false, lu);
    case kWriteSame16: return plan_write_same(cdb, true, lu);
    case kUnmap: return plan_unmap(cdb, lu);
    case kCompareAndWrite: return compare_and_write(cdb, lu);
    case kOrWrite: return or_write(cdb, lu);
    case kMaintenanceIn:
      if ((cdb[1] & 0x1f) == kReportTargetPortGroups)
        return plan_report_target_port_groups(cdb, lu);
      if ((cdb[1] & 0x1f) != kReportOpcodes) return check(sense::invalid_field_in_cdb);
      return plan_report_opcodes(cdb);
    case kStartStopUnit: return start_stop(cdb);
    case kPreventAllow:
      // Nothing here is removable: PREVENT 0 and 1 are taken and change
      // nothing; 2 and 3 (obsolete) are refused.
      if (cdb[4] & 0x02) return check(sense::invalid_field_in_cdb);
      return Plan{};
    case kRead6:
    case kRead10:
    case kRead12:
    case kRead16:
    case kWrite6:
    case kWrite10:
    case kWrite12:
    case kWrite16:
    case kWriteVerify10:
    case kWriteVerify12:
    case kWriteVerify16: return transfer(cdb, op, lu);
    case kVerify10:
    case kVerify12:
    case kVerify16: return verify(cdb, op, lu);
    case kPreFetch10: return prefetch(cdb, false, lu);
    case kPreFetch16: return prefetch(cdb, true, lu);
    case kSynchronizeCache10: return synchronize(cdb, false, lu);
    case kSynchronizeCache16: return synchronize(cdb, true, lu);
    default: return check(sense::invalid_opcode);
  }
}

int64_t verify_data(const uint8_t* expected, uint64_t expected_bytes, const uint8_t* medium,
                    uint64_t length) {
  if (expected_bytes == 0) return -1;
  for (uint64_t at = 0; at < length; at += expected_bytes) {
    const uint64_t n = std::min(expected_bytes, length - at);
    if (std::memcmp(expected, medium + at, n) == 0) continue;
    for (uint64_t i = 0; i < n; ++i)
      if (expected[i] != medium[at + i]) return static_cast<int64_t>(at + i);
  }
  return -1;
}

std::vector<uint8_t> report_luns(const std::vector<uint16_t>& luns, uint32_t allocation) {
  std::vector<uint8_t> d(8 + 8 * luns.size(), 0);
  put32(d, 0, static_cast<uint32_t>(8 * luns.size()));
  for (size_t i = 0; i < luns.size(); ++i) {
    uint16_t lun = luns[i];
    if (lun < 256) {
      d[8 + 8 * i + 1] = static_cast<uint8_t>(lun);  // peripheral device addressing
    } else {
      d[8 + 8 * i] = static_cast<uint8_t>(0x40 | (lun >> 8 & 0x3f));  // flat space
      d[8 + 8 * i + 1] = static_cast<uint8_t>(lun);
    }
  }
  if (d.size() > allocation) d.resize(allocation);
  return d;
}

bool decode_lun(uint64_t field, uint16_t& lun) {
  const uint8_t method = static_cast<uint8_t>(field >> 62);
  if ((field & 0x0000ffffffffffffull) != 0) return false;  // second and later levels
  if (method == 0) {  // peripheral: bus 0 only
    if ((field >> 56 & 0x3f) != 0) return false;
    lun = static_cast<uint16_t>(field >> 48 & 0xff);
    return true;
  }
  if (method == 1) {  // flat space
    lun = static_cast<uint16_t>(field >> 48 & 0x3fff);
    return true;
  }
  return false;
}

}  // namespace sve::scsi

#include "io/scsi/scsi_commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sve::scsi {
namespace {

enum : uint8_t {
  kTestUnitReady = 0x00,
  kRequestSense = 0x03,
  kRead6 = 0x08,
  kWrite6 = 0x0a,
  kInquiry = 0x12,
  kModeSense6 = 0x1a,
  kReadCapacity10 = 0x25,
  kRead10 = 0x28,
  kWrite10 = 0x2a,
  kSynchronizeCache10 = 0x35,
  kModeSense10 = 0x5a,
  kRead16 = 0x88,
  kWrite16 = 0x8a,
  kVerify10 = 0x2f,
  kVerify12 = 0xaf,
  kVerify16 = 0x8f,
  kWriteVerify10 = 0x2e,
  kWriteVerify12 = 0xae,
  kWriteVerify16 = 0x8e,
  kSynchronizeCache16 = 0x91,
  kServiceActionIn16 = 0x9e,
  kRead12 = 0xa8,
  kWrite12 = 0xaa,
};
constexpr uint8_t kReadCapacity16 = 0x10;  // SERVICE ACTION IN(16)'s action

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
uint64_t be64(const uint8_t* p) { return uint64_t{be32(p)} << 32 | be32(p + 4); }

void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
  v[at] = static_cast<uint8_t>(x >> 8);
  v[at + 1] = static_cast<uint8_t>(x);
}
void put32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  put16(v, at, static_cast<uint16_t>(x >> 16));
  put16(v, at + 2, static_cast<uint16_t>(x));
}
void put64(std::vector<uint8_t>& v, size_t at, uint64_t x) {
  put32(v, at, static_cast<uint32_t>(x >> 32));
  put32(v, at + 4, static_cast<uint32_t>(x));
}

Plan check(const Sense& s) {
  Plan p;
  p.status = Status::check_condition;
  p.sense = s;
  return p;
}

Plan answer(std::vector<uint8_t> data, uint32_t allocation) {
  Plan p;
  if (data.size() > allocation) data.resize(allocation);
  p.data_in = std::move(data);
  return p;
}

void put_text(std::vector<uint8_t>& v, size_t at, size_t width, const std::string& text) {
  for (size_t i = 0; i < width; ++i) v[at + i] = i < text.size() ? text[i] : ' ';
}

std::vector<uint8_t> standard_inquiry() {
  std::vector<uint8_t> d(66, 0);
  d[0] = 0x00;        // connected, direct-access block device
  d[2] = 0x06;        // SPC-4
  d[3] = 0x12;        // HiSup, response data format 2
  d[4] = 66 - 5;      // additional length
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
      break;
    }
    case 0xb0:  // block limits
      d.resize(64, 0);
      put16(d, 6, 4096 / kBlockBytes);  // optimal transfer length granularity
      put32(d, 8, kMaxTransferBlocks);
      put32(d, 12, (1u << 20) / kBlockBytes);  // optimal transfer length
      break;
    case 0xb1:  // block device characteristics
      d.resize(64, 0);
      put16(d, 4, 0x0001);  // non-rotating medium
      break;
    case 0xb2:  // logical block provisioning (UNMAP is not offered yet)
      d.resize(8, 0);
      d[6] = lu.thin ? 0x02 : 0x00;  // thin or full provisioning
      break;
    default:
      known = false;
      return {};
  }
  put16(d, 2, static_cast<uint16_t>(d.size() - 4));
  return d;
}

// The mode pages asked for (0x08 caching, 0x0a control, 0x3f all), or
// nothing for a page not kept here. `changeable`: the mask of what MODE
// SELECT may change (nothing yet).
bool mode_pages(uint8_t page, bool changeable, const LogicalUnit& lu, std::vector<uint8_t>& out) {
  auto caching = [&] {
    std::vector<uint8_t> p(20, 0);
    p[0] = 0x08;
    p[1] = 0x12;
    if (!changeable && lu.write_cache) p[2] = 0x04;  // WCE
    out.insert(out.end(), p.begin(), p.end());
  };
  auto control = [&] {
    std::vector<uint8_t> p(12, 0);
    p[0] = 0x0a;
    p[1] = 0x0a;
    if (!changeable) p[3] = 0x10;  // unrestricted reordering of commands
    out.insert(out.end(), p.begin(), p.end());
  };
  if (page == 0x08) caching();
  else if (page == 0x0a) control();
  else if (page == 0x3f) caching(), control();
  else return false;
  return true;
}

Plan mode_sense(const uint8_t* cdb, bool ten, const LogicalUnit& lu) {
  const bool dbd = cdb[1] & 0x08;
  const uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];
  const uint32_t allocation = ten ? be16(cdb + 7) : cdb[4];
  if (pc == 3) return check({0x05, 0x39, 0x00});  // saving parameters not supported
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) return check(sense::invalid_field_in_cdb);
  std::vector<uint8_t> pages;
  if (!mode_pages(page, pc == 1, lu, pages)) return check(sense::invalid_field_in_cdb);
  std::vector<uint8_t> block;
  if (!dbd) {  // one short block descriptor
    block.assign(8, 0);
    put32(block, 0, static_cast<uint32_t>(std::min<uint64_t>(lu.blocks, 0xffffffffu)));
    put32(block, 4, kBlockBytes);  // (byte 4 is reserved: the length is 24 bits)
  }
  const uint8_t device_specific = static_cast<uint8_t>((lu.read_only ? 0x80 : 0) | 0x10);
  std::vector<uint8_t> d(ten ? 8 : 4, 0);
  if (ten) {
    d[3] = device_specific;
    put16(d, 6, static_cast<uint16_t>(block.size()));
  } else {
    d[2] = device_specific;
    d[3] = static_cast<uint8_t>(block.size());
  }
  d.insert(d.end(), block.begin(), block.end());
  d.insert(d.end(), pages.begin(), pages.end());
  if (ten) put16(d, 0, static_cast<uint16_t>(d.size() - 2));
  else d[0] = static_cast<uint8_t>(d.size() - 1);
  return answer(std::move(d), allocation);
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

Plan synchronize(const uint8_t* cdb, bool sixteen, const LogicalUnit& lu) {
  const uint64_t lba = sixteen ? be64(cdb + 2) : be32(cdb + 2);
  const uint64_t blocks = sixteen ? be32(cdb + 10) : be16(cdb + 7);
  if (lba > lu.blocks || blocks > lu.blocks - lba) return check(sense::lba_out_of_range);
  Plan p;
  p.io = true;
  p.op = IoOp::flush;  // (the stack flushes the whole vdisk)
  return p;
}

}  // namespace

Sense sense_of_error(int error, bool write) {
  switch (error) {
    case EROFS:
    case EPERM: return sense::write_protected;
    case ENOSPC: return sense::out_of_space;
    case EINVAL: return sense::lba_out_of_range;
    case EAGAIN:
    case EBUSY: return sense::not_ready;
    default: return write ? sense::write_error : sense::medium_error;
  }
}

std::vector<uint8_t> fixed_sense(const Sense& s) {
  std::vector<uint8_t> d(18, 0);
  d[0] = 0x70;  // current error, fixed format
  d[2] = s.key & 0x0f;
  d[7] = 10;    // additional sense length
  d[12] = s.asc;
  d[13] = s.ascq;
  return d;
}

Plan plan(const uint8_t* cdb, size_t cdb_bytes, const LogicalUnit& lu) {
  if (cdb_bytes < 16) return check(sense::invalid_field_in_cdb);  // (iSCSI's CDB field)
  const uint8_t op = cdb[0];
  switch (op) {
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
      if ((cdb[1] & 0x1f) != kReadCapacity16) return check(sense::invalid_field_in_cdb);
      std::vector<uint8_t> d(32, 0);
      put64(d, 0, lu.blocks ? lu.blocks - 1 : 0);
      put32(d, 8, kBlockBytes);
      d[13] = kPhysicalExponent;  // logical blocks per physical block exponent
      return answer(std::move(d), be32(cdb + 10));
    }
    case kModeSense6: return mode_sense(cdb, false, lu);
    case kModeSense10: return mode_sense(cdb, true, lu);
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

#pragma once
// SCSI block commands (SPC-4, SBC-3) for a logical unit that is a vdisk:
// a command descriptor block in, a plan out. Either the stack's part (a
// read, a write, a flush of the vdisk's range, through the one I/O
// protocol) or an answer made here (INQUIRY and its VPD pages, READ
// CAPACITY, MODE SENSE, REPORT LUNS) or a CHECK CONDITION with its sense.
// Transport-independent (iSCSI carries it; any SCSI transport could); the
// CDB is hostile input: every field is checked before anything is planned.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/protocol.hpp"

namespace sve::scsi {

inline constexpr uint32_t kBlockBytes = 512;   // the logical block hosts see
inline constexpr uint32_t kPhysicalExponent = 3;  // 4 KiB physical blocks
inline constexpr uint32_t kMaxTransferBlocks = (32u << 20) / kBlockBytes;

enum class Status : uint8_t {
  good = 0x00,
  check_condition = 0x02,
  busy = 0x08,
  reservation_conflict = 0x18,
  task_set_full = 0x28,
};

struct Sense {
  uint8_t key = 0;
  uint8_t asc = 0;
  uint8_t ascq = 0;
  bool operator==(const Sense&) const = default;
};

namespace sense {
inline constexpr Sense none{};
inline constexpr Sense invalid_opcode{0x05, 0x20, 0x00};
inline constexpr Sense lba_out_of_range{0x05, 0x21, 0x00};
inline constexpr Sense invalid_field_in_cdb{0x05, 0x24, 0x00};
inline constexpr Sense lun_not_supported{0x05, 0x25, 0x00};
inline constexpr Sense write_protected{0x07, 0x27, 0x00};
inline constexpr Sense medium_error{0x03, 0x11, 0x00};      // unrecovered read error
inline constexpr Sense write_error{0x03, 0x0c, 0x00};
inline constexpr Sense not_ready{0x02, 0x04, 0x00};         // cause not reportable
inline constexpr Sense out_of_space{0x07, 0x27, 0x07};      // space allocation failed write protect
inline constexpr Sense invalid_field_in_iu{0x05, 0x0e, 0x03};  // (the transport's: iSCSI's EDTL)
inline constexpr Sense miscompare{0x0e, 0x1d, 0x00};        // miscompare during verify
}  // namespace sense

// What a host is told of a request the stack failed with `error` (an errno).
Sense sense_of_error(int error, bool write);

// Fixed-format sense data (response code 0x70), 18 bytes.
std::vector<uint8_t> fixed_sense(const Sense& s);

// What the command is about.
struct LogicalUnit {
  uint32_t volume = 0;
  uint64_t blocks = 0;  // of kBlockBytes
  bool read_only = false;
  bool thin = false;
  std::string serial;                // VPD 0x80: the vdisk's UID, the same on every node
  // VPD 0x83: an NAA 3 (locally assigned) identifier, the same on every
  // node. (NAA 6 would need an IEEE company id this project does not have.)
  std::array<uint8_t, 8> naa{};
  bool write_cache = true;           // MODE SENSE's caching page (WCE)
};

struct Plan {
  // The stack's part: `io` set, one request of `op` over [offset, offset +
  // length) of the vdisk, with the request flags (FUA).
  bool io = false;
  IoOp op = IoOp::read;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t flags = 0;
  // Data-Out bytes the command takes from the initiator (a write's payload,
  // or what VERIFY compares).
  uint64_t data_out = 0;
  // VERIFY: the read's data is not sent, it is checked. With `compare`,
  // against the Data-Out (its `data_out` bytes: the whole range, or one
  // block compared with every block of it): verify_data() says.
  bool verify = false;
  bool compare = false;
  // Or the answer made here: Data-In (cut to the allocation length) and
  // the status, with sense for a CHECK CONDITION.
  std::vector<uint8_t> data_in;
  Status status = Status::good;
  Sense sense;
};

// Plans one command of `lu`. `cdb` holds `cdb_bytes` (16 for iSCSI).
Plan plan(const uint8_t* cdb, size_t cdb_bytes, const LogicalUnit& lu);

// VERIFY with BYTCHK: whether `medium` (the range read, `length` bytes)
// matches `expected` (the Data-Out: as long, or one block for every block).
// The offset of the first byte that differs, or -1.
int64_t verify_data(const uint8_t* expected, uint64_t expected_bytes, const uint8_t* medium,
                    uint64_t length);

// REPORT LUNS' parameter data for these LUNs (single-level: peripheral
// addressing below 256, flat space above), cut to `allocation` bytes.
std::vector<uint8_t> report_luns(const std::vector<uint16_t>& luns, uint32_t allocation);

// The LUN of an 8-byte LUN field, or nothing for a form not used here.
bool decode_lun(uint64_t field, uint16_t& lun);

}  // namespace sve::scsi

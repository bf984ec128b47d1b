#pragma once
// SCSI block commands (SPC-4, SBC-3) for a logical unit that is a vdisk:
// a command descriptor block in, a plan out. Either the stack's part (a
// read, a write, a flush of the vdisk's range, through the one I/O
// protocol) or an answer made here (INQUIRY and its VPD pages, READ
// CAPACITY, MODE SENSE, REPORT LUNS) or a CHECK CONDITION with its sense.
// Transport-independent (iSCSI carries it; any SCSI transport could); the
// CDB is hostile input: every field is checked before anything is planned,
// and so is every parameter list (UNMAP's, MODE SELECT's).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/protocol.hpp"

namespace sve {
struct Reservations;  // model/reservations.hpp
struct Nexus;
}  // namespace sve

namespace sve::scsi {

inline constexpr uint32_t kBlockBytes = 512;   // the logical block hosts see
// One logical block per physical block, as READ CAPACITY(16) says: the
// 4 KiB a back end prefers is told by VPD 0xB0's optimal transfer length
// granularity instead. (Saying 4 KiB here made libiscsi's GET LBA STATUS
// test ask at LBA n+1 and want the answer at n+8, and its failure upset
// the tests after it; tgtd says 512 too.)
inline constexpr uint32_t kPhysicalExponent = 0;
inline constexpr uint32_t kMaxTransferBlocks = (32u << 20) / kBlockBytes;
// WRITE SAME: the most blocks one command covers (VPD 0xB0), and the piece
// a repeated block is written in (one buffer, filled once, sent again).
inline constexpr uint32_t kMaxWriteSameBlocks = (1u << 30) / kBlockBytes;
inline constexpr uint32_t kWriteSamePieceBytes = 1u << 20;
// UNMAP: block descriptors one parameter list may hold (all that fit in
// the largest list the CDB can announce), and the most bytes one request
// of the stack zeroes (a range is cut into pieces this long).
inline constexpr uint32_t kMaxUnmapDescriptors = (0xffff - 8) / 16;
inline constexpr uint64_t kZeroPieceBytes = 1ull << 30;
// COMPARE AND WRITE: the most blocks one compares and writes (VPD 0xB0).
inline constexpr uint32_t kMaxCompareAndWriteBlocks = 128;
// PRE-FETCH: the most bytes one command reads into the cache, and the
// piece it reads at a time: reads the cache keeps (docs/cache.md: a read
// miss under 256 KiB is kept).
inline constexpr uint64_t kMaxPrefetchBytes = 32ull << 20;
inline constexpr uint64_t kPrefetchPieceBytes = 128ull << 10;
// MODE SELECT's parameter list, at most.
inline constexpr uint32_t kMaxModeSelectBytes = 512;

// Operation codes (SPC-4, SBC-3) of the commands planned here, and of
// those a transport answers itself (REPORT LUNS).
enum : uint8_t {
  kTestUnitReady = 0x00,
  kRequestSense = 0x03,
  kRead6 = 0x08,
  kWrite6 = 0x0a,
  kInquiry = 0x12,
  kModeSelect6 = 0x15,
  kModeSense6 = 0x1a,
  kStartStopUnit = 0x1b,
  kPreventAllow = 0x1e,
  kReadCapacity10 = 0x25,
  kRead10 = 0x28,
  kWrite10 = 0x2a,
  kWriteVerify10 = 0x2e,
  kVerify10 = 0x2f,
  kPreFetch10 = 0x34,
  kSynchronizeCache10 = 0x35,
  kWriteSame10 = 0x41,
  kUnmap = 0x42,
  kModeSelect10 = 0x55,
  kModeSense10 = 0x5a,
  kRead16 = 0x88,
  kCompareAndWrite = 0x89,
  kWrite16 = 0x8a,
  kOrWrite = 0x8b,
  kWriteVerify16 = 0x8e,
  kVerify16 = 0x8f,
  kPreFetch16 = 0x90,
  kSynchronizeCache16 = 0x91,
  kWriteSame16 = 0x93,
  kServiceActionIn16 = 0x9e,
  kReportLuns = 0xa0,
  kMaintenanceIn = 0xa3,
  kRead12 = 0xa8,
  kWrite12 = 0xaa,
  kWriteVerify12 = 0xae,
  kVerify12 = 0xaf,
};
enum class Status : uint8_t {
  good = 0x00,
  check_condition = 0x02,
  busy = 0x08,
  reservation_conflict = 0x18,
  task_set_full = 0x28,
  task_aborted = 0x40,  // (TAS) ended by another nexus's PREEMPT AND ABORT
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
inline constexpr Sense invalid_field_in_parameter_list{0x05, 0x26, 0x00};
inline constexpr Sense parameter_list_length_error{0x05, 0x1a, 0x00};
inline constexpr Sense saving_not_supported{0x05, 0x39, 0x00};
inline constexpr Sense lun_not_supported{0x05, 0x25, 0x00};
inline constexpr Sense write_protected{0x07, 0x27, 0x00};
inline constexpr Sense medium_error{0x03, 0x11, 0x00};      // unrecovered read error
inline constexpr Sense write_error{0x03, 0x0c, 0x00};
inline constexpr Sense not_ready{0x02, 0x04, 0x00};         // cause not reportable
inline constexpr Sense out_of_space{0x07, 0x27, 0x07};      // space allocation failed write protect
inline constexpr Sense invalid_field_in_iu{0x05, 0x0e, 0x03};  // (the transport's: iSCSI's EDTL)
inline constexpr Sense miscompare{0x0e, 0x1d, 0x00};        // miscompare during verify
// The port's target port group cannot serve the unit now (ALUA).
inline constexpr Sense port_transitioning{0x02, 0x04, 0x0a};  // asymmetric access state transition
inline constexpr Sense port_standby{0x02, 0x04, 0x0b};        // target port in standby state
inline constexpr Sense port_unavailable{0x02, 0x04, 0x0c};    // target port in unavailable state
}  // namespace sense

// ALUA (SPC-4 5.16): each node is a target port group, of one port (its
// portal). What a group can do for a unit is its asymmetric access state;
// the values are the standard's.
enum class AccessState : uint8_t {
  optimized = 0x0,       // active/optimized: the node that owns the vdisk
  non_optimized = 0x1,   // active/non-optimized: serves it by forwarding
  standby = 0x2,         // (not used)
  unavailable = 0x3,     // serves nothing of it (no lease, group offline)
  transitioning = 0xf,   // becoming the owner
};
struct PortGroup {
  uint16_t id = 1;             // target port group; its one port has the same relative id
  AccessState state = AccessState::optimized;
  bool preferred = false;      // the vdisk's preferred node (PREF)
  bool operator==(const PortGroup&) const = default;
};

// What a host is told of a request the stack failed with `error` (an errno).
Sense sense_of_error(int error, bool write);

// Fixed-format sense data (response code 0x70), 18 bytes; with
// `information`, its INFORMATION field and the VALID bit (a miscompare's
// offset into the Data-Out, as SBC-3 has COMPARE AND WRITE and VERIFY say).
std::vector<uint8_t> fixed_sense(const Sense& s,
                                 std::optional<uint32_t> information = std::nullopt);

// What the command is about.
struct LogicalUnit {
  uint32_t volume = 0;
  uint64_t blocks = 0;  // of kBlockBytes
  bool read_only = false;
  // Thin: logical block provisioning management (LBPME): UNMAP, WRITE
  // SAME with UNMAP, and what GET LBA STATUS says deallocated. Unmapped
  // blocks read as zeros (LBPRZ): the stack zeroes what it cannot free.
  bool thin = false;
  std::string serial;                // VPD 0x80: the vdisk's UID, the same on every node
  // VPD 0x83: an NAA 3 (locally assigned) identifier, the same on every
  // node. (NAA 6 would need an IEEE company id this project does not have.)
  std::array<uint8_t, 8> naa{};
  bool write_cache = true;           // MODE SENSE's caching page (WCE)
  // ALUA: the target port group of the port the command came through, and
  // every group that reaches the unit, by id. Empty: this port's group
  // alone, active/optimized (a standalone node).
  uint16_t port_group = 1;
  std::vector<PortGroup> port_groups;
  // Its reservations (cluster state; none: nobody holds or registered any).
  std::shared_ptr<const Reservations> reservations;
  // This port's state for the unit.
  AccessState access() const;
};

// What the front end does beyond one request of the stack.
enum class Flow : uint8_t {
  one,          // the request as planned (or nothing: answered here)
  // WRITE SAME: the Data-Out is one block (none with NDOB: zeros). Zeros
  // become one write_zeroes over the range (may deallocate with `unmap`,
  // else stays allocated: NO_HOLE); any other block is repeated through a
  // buffer of kWriteSamePieceBytes and written piece by piece.
  write_same,
  // UNMAP: the Data-Out is its parameter list; unmap_ranges() says which
  // ranges are zeroed (write_zeroes that may deallocate).
  unmap,
  // GET LBA STATUS: a block_status request; lba_status_data() answers.
  lba_status,
  // MODE SELECT: the Data-Out is its parameter list; mode_select() says.
  mode_select,
  // PERSISTENT RESERVE OUT (its parameter list as Data-Out), RESERVE and
  // RELEASE: the cluster applies it (scsi_reservations.hpp) and says.
  reservation,
  // PRE-FETCH: the range read a piece (kPrefetchPieceBytes) at a time
  // through one buffer, the data dropped: the blocks are then in the cache.
  prefetch,
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
  Flow flow = Flow::one;
  bool unmap = false;          // (write_same) the blocks may be deallocated
  bool mode_ten = false;       // (mode_select) MODE SELECT(10)'s layout
  uint32_t allocation = 0;     // (lba_status) the allocation length
  // Or the answer made here: Data-In (cut to the allocation length) and
  // the status, with sense for a CHECK CONDITION.
  std::vector<uint8_t> data_in;
  Status status = Status::good;
  Sense sense;
};

// Plans one command of `lu` from nexus `who` (its reservations are checked
// for it; none: not checked). `cdb` holds `cdb_bytes` (16 for iSCSI).
Plan plan(const uint8_t* cdb, size_t cdb_bytes, const LogicalUnit& lu,
          const Nexus* who = nullptr);

// REPORT TARGET PORT GROUPS' parameter data (the length-only or the
// extended header), cut to `allocation`.
std::vector<uint8_t> target_port_groups(const LogicalUnit& lu, bool extended, uint32_t allocation);

// VERIFY with BYTCHK: whether `medium` (the range read, `length` bytes)
// matches `expected` (the Data-Out: as long, or one block for every block).
// The offset of the first byte that differs, or -1.
int64_t verify_data(const uint8_t* expected, uint64_t expected_bytes, const uint8_t* medium,
                    uint64_t length);

// A range of logical blocks.
struct LbaRange {
  uint64_t lba = 0;
  uint64_t blocks = 0;
  bool operator==(const LbaRange&) const = default;
};

// UNMAP's parameter list (`bytes` of it came): its ranges, sorted, merged
// where they touch, without empty ones; or false with the sense that
// refuses the command (then nothing is unmapped).
bool unmap_ranges(const uint8_t* list, size_t bytes, const LogicalUnit& lu,
                  std::vector<LbaRange>& ranges, Sense& refused);

// GET LBA STATUS' parameter data for what the stack answered from
// `start_lba` on (extents in bytes, status_flags), cut to `allocation`.
std::vector<uint8_t> lba_status_data(uint64_t start_lba, const std::vector<StatusExtent>& extents,
                                     uint32_t allocation);

// MODE SELECT's parameter list: the sense that refuses it, or sense::none
// when it changes nothing that cannot be changed (nothing can yet: the
// caching page's WCE follows the vdisk's cache, set by the administrator).
Sense mode_select(const uint8_t* list, size_t bytes, bool ten, const LogicalUnit& lu);

// REPORT LUNS' parameter data for these LUNs (single-level: peripheral
// addressing below 256, flat space above), cut to `allocation` bytes.
std::vector<uint8_t> report_luns(const std::vector<uint16_t>& luns, uint32_t allocation);

// The LUN of an 8-byte LUN field, or nothing for a form not used here.
bool decode_lun(uint64_t field, uint16_t& lun);

}  // namespace sve::scsi

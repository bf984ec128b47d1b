#pragma once
// iSCSI PDUs (RFC 7143, section 11): the 48-byte basic header segment that
// starts every PDU, read and written field by field (big-endian), and the
// layout of what follows it (additional headers, digests, the data segment
// padded to four bytes). A protocol core: no sockets, no CAF; what comes
// off the wire is checked here before anything else looks at it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sve::iscsi {

inline constexpr size_t kBhsBytes = 48;
inline constexpr size_t kDigestBytes = 4;  // CRC32C, when negotiated

// Opcodes (byte 0, low six bits). Initiator to target:
enum class Op : uint8_t {
  nop_out = 0x00,
  scsi_command = 0x01,
  task_management = 0x02,
  login = 0x03,
  text = 0x04,
  data_out = 0x05,
  logout = 0x06,
  snack = 0x10,
  // Target to initiator:
  nop_in = 0x20,
  scsi_response = 0x21,
  task_management_response = 0x22,
  login_response = 0x23,
  text_response = 0x24,
  data_in = 0x25,
  logout_response = 0x26,
  r2t = 0x31,
  async_message = 0x32,
  reject = 0x3f,
};
const char* to_string(Op op);
// Whether an initiator may send this opcode.
bool initiator_op(uint8_t op);

// Login stages (CSG / NSG).
enum class Stage : uint8_t { security = 0, operational = 1, full_feature = 3 };

// Login response status (class << 8 | detail), RFC 7143 11.13.5.
enum class LoginStatus : uint16_t {
  success = 0x0000,
  initiator_error = 0x0200,
  authentication_failure = 0x0201,
  authorization_failure = 0x0202,
  target_not_found = 0x0203,
  target_removed = 0x0204,
  unsupported_version = 0x0205,
  too_many_connections = 0x0206,
  missing_parameter = 0x0207,
  cannot_include_in_session = 0x0208,
  session_type_not_supported = 0x0209,
  session_does_not_exist = 0x020a,
  invalid_during_login = 0x020b,
  target_error = 0x0300,
  service_unavailable = 0x0301,
  out_of_resources = 0x0302,
};

// Reject reasons (RFC 7143 11.17.1).
enum class RejectReason : uint8_t {
  data_digest_error = 0x02,
  snack_reject = 0x03,
  protocol_error = 0x04,
  command_not_supported = 0x05,
  immediate_command_reject = 0x06,
  task_in_progress = 0x07,
  invalid_data_ack = 0x08,
  invalid_pdu_field = 0x09,
  long_op_reject = 0x0a,
  waiting_for_logout = 0x0c,
};

// The basic header segment, with accessors for the fields SVE reads and
// writes. Fields named by RFC 7143's names; offsets in bytes.
class Bhs {
 public:
  Bhs() { bytes_.fill(0); }
  static Bhs from(const uint8_t* wire);  // 48 bytes
  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* data() { return bytes_.data(); }

  uint8_t opcode() const { return bytes_[0] & 0x3f; }
  bool immediate() const { return bytes_[0] & 0x40; }
  void set_opcode(Op op, bool immediate = false) {
    bytes_[0] = static_cast<uint8_t>(static_cast<uint8_t>(op) | (immediate ? 0x40 : 0));
  }
  uint8_t flags() const { return bytes_[1]; }
  void set_flags(uint8_t f) { bytes_[1] = f; }
  bool final() const { return bytes_[1] & 0x80; }
  // In four-byte words, as on the wire.
  uint8_t total_ahs_words() const { return bytes_[4]; }
  uint32_t data_segment_length() const { return get24(5); }
  void set_data_segment_length(uint32_t n) { put24(5, n); }
  uint64_t lun() const { return get64(8); }
  void set_lun(uint64_t v) { put64(8, v); }
  uint32_t initiator_task_tag() const { return get32(16); }
  void set_initiator_task_tag(uint32_t v) { put32(16, v); }

  uint8_t byte(size_t at) const { return bytes_[at]; }
  void set_byte(size_t at, uint8_t v) { bytes_[at] = v; }
  uint16_t get16(size_t at) const;
  uint32_t get24(size_t at) const;
  uint32_t get32(size_t at) const;
  uint64_t get64(size_t at) const;
  void put16(size_t at, uint16_t v);
  void put24(size_t at, uint32_t v);
  void put32(size_t at, uint32_t v);
  void put64(size_t at, uint64_t v);

 private:
  std::array<uint8_t, kBhsBytes> bytes_;
};

// Bytes of a data segment on the wire: padded to four.
inline constexpr uint32_t padded(uint32_t n) { return (n + 3u) & ~3u; }

// What follows a header, once the header is in: the additional header
// segments, the header digest, the data segment with its padding and the
// data digest. `error` is set (and the sizes are 0) for a header that
// cannot be taken: a data segment larger than this side declared it
// receives, or an opcode an initiator may not send.
struct PduLayout {
  uint32_t ahs_bytes = 0;
  uint32_t header_digest_bytes = 0;
  uint32_t data_bytes = 0;          // the data segment, without padding
  uint32_t data_padded_bytes = 0;   // with padding
  uint32_t data_digest_bytes = 0;   // 0 when there is no data segment
  std::string error;
  // Everything after the BHS up to the data segment.
  uint32_t header_rest() const { return ahs_bytes + header_digest_bytes; }
  uint32_t data_rest() const { return data_padded_bytes + data_digest_bytes; }
};

struct Digests {
  bool header = false;
  bool data = false;
};

// Checks a header from an initiator: `max_recv` is this side's
// MaxRecvDataSegmentLength (during login, 8192 as RFC 7143 says).
PduLayout layout_of(const Bhs& header, const Digests& digests, uint32_t max_recv);

// CRC32C over the header (and its additional segments), or over a data
// segment and its padding, as the digests are computed.
uint32_t digest(const uint8_t* data, size_t bytes);

// Serial number arithmetic (RFC 1982, 32 bits), for CmdSN windows.
inline bool sn_less(uint32_t a, uint32_t b) {
  return a != b && static_cast<int32_t>(a - b) < 0;
}

}  // namespace sve::iscsi

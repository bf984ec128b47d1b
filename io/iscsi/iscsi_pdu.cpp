#include "io/iscsi/iscsi_pdu.hpp"

#include <cstdio>
#include <cstring>

#include "util/crc.hpp"

namespace sve::iscsi {

const char* to_string(Op op) {
  switch (op) {
    case Op::nop_out: return "NOP-Out";
    case Op::scsi_command: return "SCSI Command";
    case Op::task_management: return "Task Management Function Request";
    case Op::login: return "Login Request";
    case Op::text: return "Text Request";
    case Op::data_out: return "SCSI Data-Out";
    case Op::logout: return "Logout Request";
    case Op::snack: return "SNACK Request";
    case Op::nop_in: return "NOP-In";
    case Op::scsi_response: return "SCSI Response";
    case Op::task_management_response: return "Task Management Function Response";
    case Op::login_response: return "Login Response";
    case Op::text_response: return "Text Response";
    case Op::data_in: return "SCSI Data-In";
    case Op::logout_response: return "Logout Response";
    case Op::r2t: return "Ready To Transfer";
    case Op::async_message: return "Asynchronous Message";
    case Op::reject: return "Reject";
  }
  return "unknown opcode";
}

bool initiator_op(uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::nop_out:
    case Op::scsi_command:
    case Op::task_management:
    case Op::login:
    case Op::text:
    case Op::data_out:
    case Op::logout:
    case Op::snack: return true;
    default: return false;
  }
}

Bhs Bhs::from(const uint8_t* wire) {
  Bhs h;
  std::memcpy(h.bytes_.data(), wire, kBhsBytes);
  return h;
}

uint16_t Bhs::get16(size_t at) const {
  return static_cast<uint16_t>(bytes_[at] << 8 | bytes_[at + 1]);
}
uint32_t Bhs::get24(size_t at) const {
  return uint32_t{bytes_[at]} << 16 | uint32_t{bytes_[at + 1]} << 8 | bytes_[at + 2];
}
uint32_t Bhs::get32(size_t at) const { return uint32_t{get16(at)} << 16 | get16(at + 2); }
uint64_t Bhs::get64(size_t at) const { return uint64_t{get32(at)} << 32 | get32(at + 4); }

void Bhs::put16(size_t at, uint16_t v) {
  bytes_[at] = static_cast<uint8_t>(v >> 8);
  bytes_[at + 1] = static_cast<uint8_t>(v);
}
void Bhs::put24(size_t at, uint32_t v) {
  bytes_[at] = static_cast<uint8_t>(v >> 16);
  put16(at + 1, static_cast<uint16_t>(v));
}
void Bhs::put32(size_t at, uint32_t v) {
  put16(at, static_cast<uint16_t>(v >> 16));
  put16(at + 2, static_cast<uint16_t>(v));
}
void Bhs::put64(size_t at, uint64_t v) {
  put32(at, static_cast<uint32_t>(v >> 32));
  put32(at + 4, static_cast<uint32_t>(v));
}

PduLayout layout_of(const Bhs& header, const Digests& digests, uint32_t max_recv) {
  PduLayout l;
  if (!initiator_op(header.opcode())) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", header.opcode());
    l.error = std::string("opcode ") + hex + " is not one an initiator sends";
    return l;
  }
  uint32_t data = header.data_segment_length();
  if (data > max_recv) {
    l.error = "a data segment of " + std::to_string(data) + " bytes, over the " +
              std::to_string(max_recv) + " this target receives";
    return l;
  }
  l.ahs_bytes = 4u * header.total_ahs_words();
  l.header_digest_bytes = digests.header ? kDigestBytes : 0;
  l.data_bytes = data;
  l.data_padded_bytes = padded(data);
  l.data_digest_bytes = data && digests.data ? kDigestBytes : 0;
  return l;
}

uint32_t digest(const uint8_t* data, size_t bytes) { return crc32c(data, bytes); }

}  // namespace sve::iscsi

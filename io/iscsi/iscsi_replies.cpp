#include "io/iscsi/iscsi_replies.hpp"

#include <algorithm>

namespace sve::iscsi {
namespace {

constexpr uint8_t kFinal = 0x80;
// Data-In and SCSI Response flags.
constexpr uint8_t kAck = 0x40, kOverflow = 0x04, kUnderflow = 0x02, kStatus = 0x01;

void put_numbers(Bhs& h, const Numbers& n, bool with_stat_sn) {
  if (with_stat_sn) h.put32(24, n.stat_sn);
  h.put32(28, n.exp_cmd_sn);
  h.put32(32, n.max_cmd_sn);
}

// Takes the next StatSN for a response.
void stat(Bhs& h, Numbers& n) {
  put_numbers(h, n, true);
  ++n.stat_sn;
}

uint8_t residual_flags(const Residual& r) {
  return static_cast<uint8_t>((r.overflow ? kOverflow : 0) | (r.underflow ? kUnderflow : 0));
}

}  // namespace

bool CommandWindow::take(uint32_t cmd_sn, bool immediate, uint32_t room) {
  if (immediate) return true;
  if (cmd_sn == exp_) {
    ++exp_;
    pass_considered();
    return true;
  }
  // Ahead (a wrapped distance: behind is far ahead), within MaxCmdSN.
  if (cmd_sn - exp_ >= std::min(room, depth_)) return false;
  if (std::find(considered_.begin(), considered_.end(), cmd_sn) != considered_.end())
    return false;
  considered_.push_back(cmd_sn);
  return true;
}

void CommandWindow::consider_received(uint32_t cmd_sn) {
  if (cmd_sn - exp_ >= depth_) return;  // behind ExpCmdSN (a wrapped distance) or past MaxCmdSN
  if (std::find(considered_.begin(), considered_.end(), cmd_sn) == considered_.end())
    considered_.push_back(cmd_sn);
  pass_considered();
}

void CommandWindow::pass_considered() {
  for (;;) {
    auto it = std::find(considered_.begin(), considered_.end(), exp_);
    if (it == considered_.end()) return;
    considered_.erase(it);
    ++exp_;
  }
}

Residual residual_of(uint32_t expected, uint64_t actual) {
  Residual r;
  if (actual < expected) {
    r.underflow = true;
    r.count = static_cast<uint32_t>(expected - actual);
  } else if (actual > expected) {
    r.overflow = true;
    r.count = static_cast<uint32_t>(std::min<uint64_t>(actual - expected, UINT32_MAX));
  }
  return r;
}

std::vector<DataInPdu> data_in(uint32_t itt, uint64_t lun, uint64_t data_bytes, uint32_t expected,
                               uint32_t max_segment, Numbers& n, uint32_t max_burst) {
  const Residual residual = residual_of(expected, data_bytes);
  const uint32_t total = static_cast<uint32_t>(std::min<uint64_t>(data_bytes, expected));
  max_segment = std::max<uint32_t>(max_segment, 512);
  const uint64_t burst = max_burst ? std::max<uint32_t>(max_burst, 512) : uint64_t{1} << 32;
  std::vector<DataInPdu> out;
  uint32_t at = 0;
  uint32_t data_sn = 0;
  do {
    DataInPdu pdu;
    pdu.offset = at;
    const uint64_t sequence_end = (at / burst + 1) * burst;
    pdu.length = static_cast<uint32_t>(
        std::min<uint64_t>({max_segment, total - at, sequence_end - at}));
    at += pdu.length;
    Bhs& h = pdu.header;
    h.set_opcode(Op::data_in);
    h.set_data_segment_length(pdu.length);
    h.set_lun(lun);
    h.set_initiator_task_tag(itt);
    h.put32(20, kNoTag);  // target transfer tag
    h.put32(36, data_sn++);
    h.put32(40, pdu.offset);
    if (at == total) {  // the last: the status rides with it
      h.set_flags(static_cast<uint8_t>(kFinal | kStatus | residual_flags(residual)));
      h.set_byte(3, 0x00);  // GOOD
      h.put32(44, residual.count);
      stat(h, n);
    } else {
      if (at == sequence_end) h.set_flags(kFinal);  // a sequence ends: MaxBurstLength
      put_numbers(h, n, false);
    }
    out.push_back(pdu);
  } while (at < total);
  return out;
}

Response scsi_response(uint32_t itt, uint8_t status, const std::vector<uint8_t>& sense,
                       Residual residual, uint32_t exp_data_sn, Numbers& n) {
  Response r;
  Bhs& h = r.header;
  h.set_opcode(Op::scsi_response);
  h.set_flags(static_cast<uint8_t>(kFinal | residual_flags(residual)));
  h.set_byte(2, 0x00);  // command completed at the target
  h.set_byte(3, status);
  h.set_initiator_task_tag(itt);
  h.put32(36, exp_data_sn);
  h.put32(44, residual.count);
  if (!sense.empty()) {
    r.data.push_back(static_cast<uint8_t>(sense.size() >> 8));
    r.data.push_back(static_cast<uint8_t>(sense.size()));
    r.data.insert(r.data.end(), sense.begin(), sense.end());
  }
  h.set_data_segment_length(static_cast<uint32_t>(r.data.size()));
  stat(h, n);
  return r;
}

WritePlan plan_write(const SessionParams& p, uint32_t expected, uint32_t immediate,
                     bool final_bit) {
  WritePlan w;
  if (immediate > expected || (immediate && !p.immediate_data) ||
      immediate > p.first_burst_length || (!final_bit && p.initial_r2t))
    return w;
  w.valid = true;
  w.unsolicited = final_bit ? immediate : std::min(expected, p.first_burst_length);
  const uint32_t burst = std::max<uint32_t>(p.max_burst_length, 512);
  for (uint32_t at = w.unsolicited; at < expected;) {
    uint32_t length = std::min(burst, expected - at);
    w.solicited.push_back({at, length});
    at += length;
  }
  return w;
}

Bhs r2t(uint32_t itt, uint64_t lun, uint32_t ttt, uint32_t r2t_sn, uint32_t offset,
        uint32_t length, const Numbers& n) {
  Bhs h;
  h.set_opcode(Op::r2t);
  h.set_flags(kFinal);
  h.set_lun(lun);
  h.set_initiator_task_tag(itt);
  h.put32(20, ttt);
  put_numbers(h, n, true);  // (the StatSN it carries is the next, not taken)
  h.put32(36, r2t_sn);
  h.put32(40, offset);
  h.put32(44, length);
  return h;
}

Bhs nop_in(const Bhs& nop_out, uint32_t data_bytes, Numbers& n) {
  Bhs h;
  h.set_opcode(Op::nop_in);
  h.set_flags(kFinal);
  h.set_data_segment_length(data_bytes);
  h.set_lun(nop_out.lun());
  h.set_initiator_task_tag(nop_out.initiator_task_tag());
  h.put32(20, kNoTag);
  stat(h, n);
  return h;
}

Bhs logout_response(const Bhs& logout, Numbers& n, uint8_t response) {
  Bhs h;
  h.set_opcode(Op::logout_response);
  h.set_flags(kFinal);
  h.set_byte(2, response);  // 0: closed successfully
  h.set_initiator_task_tag(logout.initiator_task_tag());
  stat(h, n);
  return h;
}

Bhs task_response(const Bhs& request, uint8_t response, Numbers& n) {
  Bhs h;
  h.set_opcode(Op::task_management_response);
  h.set_flags(kFinal);
  h.set_byte(2, response);
  h.set_initiator_task_tag(request.initiator_task_tag());
  stat(h, n);
  return h;
}

Bhs text_response(const Bhs& request, uint32_t data_bytes, Numbers& n) {
  Bhs h;
  h.set_opcode(Op::text_response);
  h.set_flags(kFinal);
  h.set_data_segment_length(data_bytes);
  h.set_lun(request.lun());
  h.set_initiator_task_tag(request.initiator_task_tag());
  h.put32(20, kNoTag);  // nothing continues
  stat(h, n);
  return h;
}

Bhs reject(RejectReason reason, Numbers& n) {
  Bhs h;
  h.set_opcode(Op::reject);
  h.set_flags(kFinal);
  h.set_byte(2, static_cast<uint8_t>(reason));
  h.set_data_segment_length(kBhsBytes);
  h.set_initiator_task_tag(kNoTag);
  stat(h, n);
  return h;
}

}  // namespace sve::iscsi

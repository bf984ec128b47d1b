#pragma once
// The full-feature phase's arithmetic and the target's PDUs (RFC 7143
// 11.2-11.9, 11.14-11.19): the command window, the Data-In that carries a
// read (split to the initiator's MaxRecvDataSegmentLength, the status in
// the last PDU, residuals), which ranges of a write come unsolicited and
// which are asked for by R2T, and the headers of SCSI Response, R2T,
// NOP-In, Logout Response, Task Management Response and Reject. Pure
// functions over headers: the port that moves them is built on these.
#include <cstdint>
#include <vector>

#include "io/iscsi/iscsi_pdu.hpp"
#include "io/iscsi/iscsi_text.hpp"

namespace sve::iscsi {

inline constexpr uint32_t kNoTag = 0xffffffffu;  // the reserved task tag

// CmdSN: the commands this connection takes. A non-immediate command is
// taken in order (one connection per session here); one outside the window
// is ignored, as RFC 7143 says; immediate commands take no number.
class CommandWindow {
 public:
  CommandWindow(uint32_t exp_cmd_sn, uint32_t depth) : exp_(exp_cmd_sn), depth_(depth) {}
  // A non-immediate command is taken once, at ExpCmdSN or, with `room` > 1
  // (MaxCmdSN - ExpCmdSN + 1 as last told), up to room - 1 ahead of it: a
  // session's connections each carry their own commands, and one of them
  // may overtake those another still carries (RFC 7143 3.2.2.1). ExpCmdSN
  // then moves past every command received in a row. False: ignored
  // (behind ExpCmdSN, past MaxCmdSN, or received already).
  bool take(uint32_t cmd_sn, bool immediate, uint32_t room = 1);
  // An ABORT TASK named a command in the window not received yet: its
  // CmdSN counts as received (RFC 7143 11.6.1 b), so the commands after it
  // are not held back for one the initiator will not send, and if it comes
  // after all it is ignored. Outside the window: nothing.
  void consider_received(uint32_t cmd_sn);
  uint32_t exp_cmd_sn() const { return exp_; }
  uint32_t max_cmd_sn() const { return exp_ + depth_ - 1; }

 private:
  void pass_considered();  // ExpCmdSN past those counted as received

  uint32_t exp_;
  uint32_t depth_;
  std::vector<uint32_t> considered_;  // ahead of exp_, in the window
};

// The numbers every response carries: StatSN (taken by each response that
// has one), ExpCmdSN and MaxCmdSN.
struct Numbers {
  uint32_t stat_sn = 0;
  uint32_t exp_cmd_sn = 0;
  uint32_t max_cmd_sn = 0;
};

// A residual: the command expected `expected` bytes, `actual` moved.
// Underflow: the rest was not moved; overflow: what did not fit was cut.
struct Residual {
  bool underflow = false;
  bool overflow = false;
  uint32_t count = 0;
};
Residual residual_of(uint32_t expected, uint64_t actual);

// One Data-In PDU of a read: its header and which bytes of the data it
// carries.
struct DataInPdu {
  Bhs header;
  uint32_t offset = 0;
  uint32_t length = 0;
};
// The Data-In PDUs of `data_bytes` of a read (cut to `expected` bytes),
// each at most `max_segment`, in sequences of at most `max_burst` bytes
// (MaxBurstLength; 0: one sequence): the last PDU of a sequence has the F
// bit, no PDU crosses a sequence's end; the last PDU carries the status
// (GOOD) and takes a StatSN from `n`. At least one PDU, even for no data.
std::vector<DataInPdu> data_in(uint32_t itt, uint64_t lun, uint64_t data_bytes, uint32_t expected,
                               uint32_t max_segment, Numbers& n, uint32_t max_burst = 0);

// A SCSI Response, with sense data (its data segment: a 2-byte length and
// the sense) when the status has it; takes a StatSN.
struct Response {
  Bhs header;
  std::vector<uint8_t> data;
};
Response scsi_response(uint32_t itt, uint8_t status, const std::vector<uint8_t>& sense,
                       Residual residual, uint32_t exp_data_sn, Numbers& n);

// Where a write's data comes from: [0, unsolicited) without asking
// (immediate data, then Data-Out without an R2T as far as FirstBurstLength
// allows), the rest by R2T, MaxBurstLength at a time. Nothing if the
// command broke the negotiated rules (more immediate data than allowed, or
// unsolicited Data-Out promised under InitialR2T=Yes).
struct WritePlan {
  bool valid = false;
  uint32_t unsolicited = 0;
  struct Burst {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  std::vector<Burst> solicited;
};
WritePlan plan_write(const SessionParams& p, uint32_t expected, uint32_t immediate, bool final_bit);

// An R2T for one burst (no StatSN taken).
Bhs r2t(uint32_t itt, uint64_t lun, uint32_t ttt, uint32_t r2t_sn, uint32_t offset,
        uint32_t length, const Numbers& n);
// A NOP-In answering a NOP-Out (its ping data goes back as the data segment).
Bhs nop_in(const Bhs& nop_out, uint32_t data_bytes, Numbers& n);
// A Logout Response: the connection or session is closed.
// (response: 0 closed, 1 CID not found, 2 connection recovery not supported)
Bhs logout_response(const Bhs& logout, Numbers& n, uint8_t response = 0);
// A Task Management Function Response with `response` (0: complete, 1:
// the task does not exist, 5: not supported).
Bhs task_response(const Bhs& request, uint8_t response, Numbers& n);
// A Text Response to `request` carrying `data_bytes` of text, complete (no
// continuation); takes a StatSN.
Bhs text_response(const Bhs& request, uint32_t data_bytes, Numbers& n);
// A Reject (the rejected header goes back as its data segment).
Bhs reject(RejectReason reason, Numbers& n);

}  // namespace sve::iscsi

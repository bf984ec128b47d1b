// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): every command planned
// here (and REPORT LUNS, which the transport answers), with the bits of
// its CDB that are looked at. Kept beside plan(): a command added there
// and not here is a command hosts do not know they may send.
#include <array>

#include "io/scsi/scsi_internal.hpp"
#include "io/scsi/scsi_reservations.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;

struct Supported {
  uint8_t opcode;
  uint8_t action;        // its service action, where `has_action`
  bool has_action;
  uint8_t length;        // of the CDB
  std::array<uint8_t, 16> usage;  // CDB usage data (byte 0: the opcode)
};

constexpr uint8_t F = 0xff;
// (WRPROTECT/DPO/FUA in a read or write's byte 1: 0xf8; with BYTCHK: 0xf6.)
constexpr Supported kSupported[] = {
    {kTestUnitReady, 0, false, 6, {kTestUnitReady, 0, 0, 0, 0, 0}},
    {kRequestSense, 0, false, 6, {kRequestSense, 0x01, 0, 0, F, 0}},
    {kRead6, 0, false, 6, {kRead6, 0x1f, F, F, F, 0}},
    {kWrite6, 0, false, 6, {kWrite6, 0x1f, F, F, F, 0}},
    {kInquiry, 0, false, 6, {kInquiry, 0x01, F, F, F, 0}},
    {kModeSelect6, 0, false, 6, {kModeSelect6, 0x11, 0, 0, F, 0}},
    {kModeSense6, 0, false, 6, {kModeSense6, 0x08, F, F, F, 0}},
    {kStartStopUnit, 0, false, 6, {kStartStopUnit, 0, 0, 0, 0xf3, 0}},
    {kPreventAllow, 0, false, 6, {kPreventAllow, 0, 0, 0, 0x03, 0}},
    {kReadCapacity10, 0, false, 10, {kReadCapacity10, 0, F, F, F, F, 0, 0, 0x01, 0}},
    {kRead10, 0, false, 10, {kRead10, 0xf8, F, F, F, F, 0, F, F, 0}},
    {kWrite10, 0, false, 10, {kWrite10, 0xf8, F, F, F, F, 0, F, F, 0}},
    {kWriteVerify10, 0, false, 10, {kWriteVerify10, 0xf6, F, F, F, F, 0, F, F, 0}},
    {kVerify10, 0, false, 10, {kVerify10, 0xf6, F, F, F, F, 0, F, F, 0}},
    {kSynchronizeCache10, 0, false, 10, {kSynchronizeCache10, 0, F, F, F, F, 0, F, F, 0}},
    {kPreFetch10, 0, false, 10, {kPreFetch10, 0x02, F, F, F, F, 0x1f, F, F, 0}},
    {kWriteSame10, 0, false, 10, {kWriteSame10, F, F, F, F, F, 0, F, F, 0}},
    {kUnmap, 0, false, 10, {kUnmap, 0x01, 0, 0, 0, 0, 0, F, F, 0}},
    {kModeSelect10, 0, false, 10, {kModeSelect10, 0x11, 0, 0, 0, 0, 0, F, F, 0}},
    {kModeSense10, 0, false, 10, {kModeSense10, 0x08, F, F, 0, 0, 0, F, F, 0}},
    {kRead16, 0, false, 16, {kRead16, 0xf8, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kCompareAndWrite, 0, false, 16,
     {kCompareAndWrite, 0xf8, F, F, F, F, F, F, F, F, 0, 0, 0, F, 0, 0}},
    {kWrite16, 0, false, 16, {kWrite16, 0xf8, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kOrWrite, 0, false, 16, {kOrWrite, 0xfa, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kWriteVerify16, 0, false, 16, {kWriteVerify16, 0xf6, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kVerify16, 0, false, 16, {kVerify16, 0xf6, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kPreFetch16, 0, false, 16, {kPreFetch16, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0}},
    {kSynchronizeCache16, 0, false, 16,
     {kSynchronizeCache16, 0, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kWriteSame16, 0, false, 16, {kWriteSame16, F, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kServiceActionIn16, kReadCapacity16, true, 16,
     {kServiceActionIn16, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0}},
    {kServiceActionIn16, kGetLbaStatus, true, 16,
     {kServiceActionIn16, 0x1f, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0}},
    {kReportLuns, 0, false, 12, {kReportLuns, 0, 0, 0, 0, 0, F, F, F, F, 0, 0}},
    {kMaintenanceIn, kReportTargetPortGroups, true, 12,
     {kMaintenanceIn, 0xff, 0, 0, 0, 0, F, F, F, F, 0, 0}},
    {kMaintenanceIn, kReportOpcodes, true, 12,
     {kMaintenanceIn, 0x1f, 0x87, F, F, F, F, F, F, F, 0, 0}},
    {kRead12, 0, false, 12, {kRead12, 0xf8, F, F, F, F, F, F, F, F, 0, 0}},
    {kWrite12, 0, false, 12, {kWrite12, 0xf8, F, F, F, F, F, F, F, F, 0, 0}},
    {kWriteVerify12, 0, false, 12, {kWriteVerify12, 0xf6, F, F, F, F, F, F, F, F, 0, 0}},
    {kVerify12, 0, false, 12, {kVerify12, 0xf6, F, F, F, F, F, F, F, F, 0, 0}},
    {kReserve6, 0, false, 6, {kReserve6, 0, 0, 0, 0, 0}},
    {kRelease6, 0, false, 6, {kRelease6, 0, 0, 0, 0, 0}},
    {kReserve10, 0, false, 10, {kReserve10, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {kRelease10, 0, false, 10, {kRelease10, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    // PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION, REPORT
    // CAPABILITIES, READ FULL STATUS; OUT: REGISTER to REGISTER AND IGNORE.
#define SVE_PR_IN(sa) {kPersistentReserveIn, sa, true, 10, {kPersistentReserveIn, 0x1f, 0, 0, 0, 0, 0, F, F, 0}}
#define SVE_PR_OUT(sa) {kPersistentReserveOut, sa, true, 10, {kPersistentReserveOut, 0x1f, F, 0, 0, F, F, F, F, 0}}
    SVE_PR_IN(0), SVE_PR_IN(1), SVE_PR_IN(2), SVE_PR_IN(3),
    SVE_PR_OUT(0), SVE_PR_OUT(1), SVE_PR_OUT(2), SVE_PR_OUT(3), SVE_PR_OUT(4), SVE_PR_OUT(5),
    SVE_PR_OUT(6), SVE_PR_OUT(7),
#undef SVE_PR_IN
#undef SVE_PR_OUT
};

// A command timeouts descriptor: none specified.
void put_timeouts(std::vector<uint8_t>& d) {
  const size_t at = d.size();
  d.resize(at + 12, 0);
  put16(d, at, 0x000a);
}

}  // namespace

Plan plan_report_opcodes(const uint8_t* cdb) {
  const bool rctd = cdb[2] & 0x80;
  const uint8_t options = cdb[2] & 0x07;
  const uint8_t opcode = cdb[3];
  const uint16_t action = be16(cdb + 4);
  const uint32_t allocation = be32(cdb + 6);
  std::vector<uint8_t> d;
  if (options == 0) {  // all commands
    d.assign(4, 0);
    for (const Supported& s : kSupported) {
      const size_t at = d.size();
      d.resize(at + 8, 0);
      d[at] = s.opcode;
      put16(d, at + 2, s.has_action ? s.action : 0);
      d[at + 5] = static_cast<uint8_t>((rctd ? 0x02 : 0) | (s.has_action ? 0x01 : 0));
      put16(d, at + 6, s.length);
      if (rctd) put_timeouts(d);
    }
    put32(d, 0, static_cast<uint32_t>(d.size() - 4));
    return answer(std::move(d), allocation);
  }
  if (options > 3) return check(sense::invalid_field_in_cdb);
  // One command: by its opcode (1: the service action field is ignored),
  // by opcode and service action (2), or either, as the opcode has
  // service actions or not (3).
  const Supported* found = nullptr;
  bool opcode_has_actions = false;
  for (const Supported& s : kSupported) {
    if (s.opcode != opcode) continue;
    opcode_has_actions = s.has_action;
    if (!s.has_action || s.action == action) found = &s;
  }
  if ((options == 1 && opcode_has_actions) || (options == 2 && !opcode_has_actions && found))
    return check(sense::invalid_field_in_cdb);
  d.assign(4, 0);
  if (!found) {
    d[1] = 0x01;  // not supported
    return answer(std::move(d), allocation);
  }
  d[1] = static_cast<uint8_t>((rctd ? 0x80 : 0) | 0x03);  // supported as the standard says
  put16(d, 2, found->length);
  d.insert(d.end(), found->usage.begin(), found->usage.begin() + found->length);
  if (rctd) put_timeouts(d);
  return answer(std::move(d), allocation);
}

}  // namespace sve::scsi

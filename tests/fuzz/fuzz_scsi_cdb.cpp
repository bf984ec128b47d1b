// Fuzz target: a SCSI command descriptor block from a host, planned for a
// logical unit whose size and mode also come from the input. Whatever the
// CDB, a request for the stack lies inside the vdisk and within its
// command's limit, a write is never planned for a read-only unit, the
// Data-Out asked for is what the command takes (a write's range, one
// block for WRITE SAME, a bounded parameter list), UNMAP only on a thin
// unit, a port whose ALUA state cannot serve the unit plans no request,
// and an answer made here is never longer than the CDB's allocation length
// allows nor than 64 KiB.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "io/scsi/scsi_commands.hpp"
#include "io/scsi/scsi_reservations.hpp"
#include "model/reservations.hpp"

using namespace sve;
using namespace sve::scsi;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16 + 9) return 0;
  LogicalUnit lu;
  uint64_t blocks = 0;
  std::memcpy(&blocks, data + 16, 8);
  lu.blocks = (blocks >> (data[24] & 63)) >> 9;  // (a vdisk holds less than 2^64 bytes)
  lu.read_only = data[24] & 0x40;
  lu.thin = data[24] & 0x80;
  lu.serial = "600507680c800123";
  if (size > 25) {  // this port's group's ALUA state, beside another group
    static constexpr AccessState kStates[] = {AccessState::optimized, AccessState::non_optimized,
                                              AccessState::unavailable,
                                              AccessState::transitioning};
    lu.port_group = 1;
    lu.port_groups = {{1, kStates[data[25] & 3], true}, {2, AccessState::optimized, false}};
  }
  const bool serving =
      lu.access() == AccessState::optimized || lu.access() == AccessState::non_optimized;
  // Reservations held by A (persistent, of a type from the input; or
  // RESERVE), B registered or not; the command from A or B.
  const Nexus a{"iqn.a,i,0x000000000001", 1}, b{"iqn.b,i,0x000000000001", 2};
  auto state = std::make_shared<Reservations>();
  const uint8_t bits = size > 26 ? data[26] : 0;
  if (bits & 0x80) {
    state->reserved = true;
    state->reserved_by = a;
  } else if (bits & 0x07) {
    static constexpr uint8_t kTypes[] = {0, 1, 3, 5, 6, 7, 8, 1};
    state->registrations.push_back({a.initiator, a.port, false, 0xa});
    if (bits & 0x08) state->registrations.push_back({b.initiator, b.port, false, 0xb});
    state->type = kTypes[bits & 0x07];
  }
  lu.reservations = state;
  const Nexus& who = bits & 0x10 ? b : a;
  Plan p = plan(data, 16, lu, &who);
  if (!serving && (p.io || p.data_out)) std::abort();
  if (serving && conflicts(data, *state, who) &&
      (p.status != Status::reservation_conflict || p.io || p.data_out))
    std::abort();
  if (p.flow == Flow::reservation) {
    // (24 bytes; REGISTER AND MOVE's list carries a TransportID too, a
    // REGISTER's with SPEC_I_PT TransportIDs.)
    const uint8_t action = data[0] == kPersistentReserveOut ? (data[1] & 0x1f) : 0xff;
    const uint32_t most = action == 7 ? kMaxRegisterAndMoveBytes
                          : action == 0 ? kMaxSpecifiedBytes
                                        : 24;
    if (p.io || (p.data_out != 0 && (p.data_out < 24 || p.data_out > most))) std::abort();
    const size_t rest = size > 27 ? size - 27 : 0;
    ReservationRequest request;
    Sense refused;
    if (parse_reservation(data, data + 27, std::min<size_t>(rest, p.data_out), request,
                          refused)) {
      Reservations after = *state;
      ReservationOutcome out = apply_request(after, who, request);
      if (out.result != ReservationResult::good && !(after == *state)) std::abort();
      if (out.changed != !(after == *state)) std::abort();
      if (after.type != 0 && after.registrations.empty()) std::abort();
    }
  }
  const uint64_t unit_bytes = lu.blocks * kBlockBytes;
  auto inside = [&](uint64_t most) {
    uint64_t end = p.offset + p.length;
    return end >= p.offset && end <= unit_bytes && p.length > 0 && p.length <= most;
  };
  if (p.io || p.data_out) {
    const bool writes =
        p.op == IoOp::write || p.op == IoOp::write_zeroes || p.op == IoOp::compare_and_write;
    if (writes && lu.read_only) std::abort();
    switch (p.flow) {
      case Flow::one:
        if (!p.io) std::abort();
        if (p.op != IoOp::flush && !inside(uint64_t{kMaxTransferBlocks} * kBlockBytes))
          std::abort();
        if (p.op == IoOp::compare_and_write) {  // both halves, within its limit
          if (p.data_out != 2 * p.length ||
              p.length > uint64_t{kMaxCompareAndWriteBlocks} * kBlockBytes)
            std::abort();
        } else if (p.verify ? (p.data_out != 0 && p.data_out != kBlockBytes &&
                               p.data_out != p.length)
                            : p.data_out != (p.op == IoOp::write ? p.length : 0)) {
          std::abort();
        }
        break;
      case Flow::write_same:
        if (!p.io || !inside(uint64_t{kMaxWriteSameBlocks} * kBlockBytes) ||
            (p.data_out != 0 && p.data_out != kBlockBytes) || (p.unmap && !lu.thin))
          std::abort();
        break;
      case Flow::unmap:  // the ranges come with the parameter list
        if (!p.io || !lu.thin || p.length != 0 || p.data_out < 8 || p.data_out > 0xffff)
          std::abort();
        break;
      case Flow::lba_status:
        if (!p.io || !inside(1ull << 30) || p.data_out != 0) std::abort();
        break;
      case Flow::mode_select:
        if (p.io || p.data_out > kMaxModeSelectBytes) std::abort();
        break;
      case Flow::prefetch:  // a read of the range, nothing sent either way
        if (!p.io || p.op != IoOp::read || !inside(kMaxPrefetchBytes) || p.data_out != 0 ||
            !p.data_in.empty())
          std::abort();
        break;
      case Flow::reservation:
        break;
    }
  }
  if (p.data_in.size() > 65536) std::abort();
  if (p.status != Status::good && (p.io || !p.data_in.empty())) std::abort();
  return 0;
}

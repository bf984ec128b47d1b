// The SCSI commands that are more than one request of the stack, or that
// are answered from a parameter list (io/scsi's Flow): WRITE SAME, UNMAP,
// PRE-FETCH, GET LBA STATUS, MODE SELECT. Their Data-Out is in the
// request's buffer when start_io runs; each piece goes down the stack as a
// plain request.
#include <algorithm>
#include <cstring>

#include "io/iscsi/port/iscsi_connection.hpp"
#include "io/iscsi/iscsi_pdu.hpp"

namespace sve::iscsi {

// The pooled buffer a command needs: a transfer's range (VERIFY's Data-Out
// before it); WRITE SAME's block repeated over one piece; a parameter
// list; room for GET LBA STATUS' extents.
uint64_t IscsiConnection::buffer_bytes_for(const Task& t) const {
  const IoRequest& r = *t.request;
  switch (t.flow) {
    case scsi::Flow::one:
      // (A compare-and-write's: expected, then new; an or-write's data.)
      if (read_modify_write(r.op)) return t.data_out;
      if (r.op != IoOp::read && r.op != IoOp::write) return 0;
      return r.length + (t.verify ? t.data_out : 0);
    case scsi::Flow::write_same:
      return t.data_out ? std::min<uint64_t>(r.length, scsi::kWriteSamePieceBytes) : 0;
    case scsi::Flow::unmap:
    case scsi::Flow::mode_select:
    case scsi::Flow::reservation: return t.data_out;
    case scsi::Flow::lba_status: return 4096;
    case scsi::Flow::prefetch: return std::min<uint64_t>(r.length, scsi::kPrefetchPieceBytes);
  }
  return 0;
}

void IscsiConnection::start_io(Task& t) {
  if (t.ended_by_other) return answer_ended(t);  // (end_for_other)
  IoRequest& r = *t.request;
  switch (t.flow) {
    case scsi::Flow::one: break;
    case scsi::Flow::write_same:
      if (!begin_write_same(t)) return;
      break;
    case scsi::Flow::unmap:
      if (!begin_unmap(t)) return;
      break;
    case scsi::Flow::prefetch:
      t.ranges.assign(1, {r.offset / scsi::kBlockBytes, r.length / scsi::kBlockBytes});
      t.range_at = 0;
      t.range_done = 0;
      next_piece(t);  // (a PRE-FETCH planned to the stack has at least one block)
      break;
    case scsi::Flow::lba_status: {
      // As many extents as descriptors fit in the allocation length (and
      // the buffer: block_status_request keeps to it).
      block_status_request(r, std::max<uint32_t>(1, (t.allocation - std::min(t.allocation, 8u)) / 16));
      break;
    }
    case scsi::Flow::mode_select: return answer_mode_select(t);
    case scsi::Flow::reservation: return begin_reservation(t);
  }
  submit(t);
}

// The next piece of the ranges into the request: false once all are sent.
bool IscsiConnection::next_piece(Task& t) {
  IoRequest& r = *t.request;
  const uint64_t piece = r.op == IoOp::write  ? scsi::kWriteSamePieceBytes
                         : r.op == IoOp::read ? scsi::kPrefetchPieceBytes
                                              : scsi::kZeroPieceBytes;
  while (t.range_at < t.ranges.size()) {
    const scsi::LbaRange& range = t.ranges[t.range_at];
    const uint64_t begin = range.lba * scsi::kBlockBytes;
    const uint64_t end = begin + range.blocks * scsi::kBlockBytes;
    const uint64_t at = begin + t.range_done;
    if (at >= end) {
      ++t.range_at;
      t.range_done = 0;
      continue;
    }
    r.offset = at;
    r.length = std::min(piece, end - at);
    r.status = 0;
    r.hole_mask = 0;
    r.hole_unit = 0;
    t.range_done += r.length;
    return true;
  }
  return false;
}

// WRITE SAME: a block of zeros (or none, NDOB) is one write_zeroes over
// the range, which may deallocate with UNMAP and else keeps the blocks
// (NO_HOLE); any other block is repeated through the buffer and written
// a piece at a time.
bool IscsiConnection::begin_write_same(Task& t) {
  IoRequest& r = *t.request;
  t.ranges.assign(1, {r.offset / scsi::kBlockBytes, r.length / scsi::kBlockBytes});
  t.range_at = 0;
  t.range_done = 0;
  uint8_t block[scsi::kBlockBytes] = {};
  bool zeros = true;
  if (t.data_out) {
    r.buffer->copy_out(0, scsi::kBlockBytes, block);
    zeros = std::all_of(block, block + scsi::kBlockBytes, [](uint8_t b) { return b == 0; });
  }
  if (zeros) {
    r.op = IoOp::write_zeroes;
    r.flags = t.unmap ? 0 : io_flags::no_hole;
    r.buffer.reset();
  } else {
    for (uint64_t at = scsi::kBlockBytes; at < r.buffer->size(); at += scsi::kBlockBytes)
      r.buffer->copy_in(at, std::min<uint64_t>(scsi::kBlockBytes, r.buffer->size() - at), block);
  }
  return next_piece(t);  // (a WRITE SAME has at least one block)
}

// The parameter list that came (the Data-Out, as much as the CDB asked
// for), out of the request's buffer, which goes back to its pool.
std::vector<uint8_t> IscsiConnection::parameter_list(Task& t) {
  IoRequest& r = *t.request;
  if (!r.buffer) return {};  // (none asked for: RESERVE, a MODE SELECT of nothing)
  std::vector<uint8_t> list(std::min(t.received, t.data_out));
  r.buffer->copy_out(0, list.size(), list.data());
  r.buffer.reset();
  return list;
}

// UNMAP: its parameter list, checked whole before anything is zeroed.
bool IscsiConnection::begin_unmap(Task& t) {
  const Unit* unit = unit_of(t.command.lun());
  const std::vector<uint8_t> list = parameter_list(t);
  scsi::Sense refused;
  if (!unit) {
    refused = scsi::sense::lun_not_supported;
  } else if (scsi::unmap_ranges(list.data(), list.size(), unit->lu, t.ranges, refused)) {
    t.range_at = 0;
    t.range_done = 0;
    if (next_piece(t)) return true;
    answer(t);  // nothing to unmap
    return false;
  }
  t.status = scsi::Status::check_condition;
  t.sense = refused;
  answer(t);
  return false;
}

void IscsiConnection::lba_status_in(Task& t) {
  IoRequest& r = *t.request;
  std::vector<StatusExtent> extents = get_block_status(r);
  if (extents.empty()) {  // no answer from the stack: nothing to tell
    t.status = scsi::Status::check_condition;
    t.sense = scsi::sense_of_error(EIO, false);
    return;
  }
  t.data = scsi::lba_status_data(r.offset / scsi::kBlockBytes, extents, t.allocation);
}

void IscsiConnection::answer_mode_select(Task& t) {
  const Unit* unit = unit_of(t.command.lun());
  const std::vector<uint8_t> list = parameter_list(t);
  const scsi::Sense refused = unit ? scsi::mode_select(list.data(), list.size(), t.mode_ten, unit->lu)
                                   : scsi::sense::lun_not_supported;
  if (!(refused == scsi::sense::none)) {
    t.status = scsi::Status::check_condition;
    t.sense = refused;
  }
  answer(t);
}

// A reservation command: the cluster applies it (every node then enforces
// it), and it is answered once it has (reservation_done).
void IscsiConnection::begin_reservation(Task& t) {
  const Unit* unit = unit_of(t.command.lun());
  const std::vector<uint8_t> list = parameter_list(t);
  ReservationRequest request;
  scsi::Sense refused = scsi::sense::lun_not_supported;
  if (!unit || !setup_.on_reservation ||
      !scsi::parse_reservation(t.command.data() + 32, list.data(), list.size(), request,
                               refused)) {
    if (unit && !setup_.on_reservation) refused = scsi::sense::invalid_opcode;
    t.status = scsi::Status::check_condition;
    t.sense = refused;
    return answer(t);
  }
  t.in_stack = true;  // (an abort, the connection's end, wait for the answer)
  setup_.on_reservation(this, &t, unit->lu.volume, request);
}

void IscsiConnection::reservation_done(Task& t, const ReservationOutcome& outcome) {
  const auto op = static_cast<Op>(t.command.opcode());
  if (op != Op::scsi_command) {  // a reset's or a logout's
    --t.cluster_waits;
    if (op == Op::task_management) waited(t);
    else maybe_logout();
    return maybe_finish();
  }
  t.in_stack = false;
  scsi::status_of(outcome.result, t.status, t.sense);
  conclude(t);
}

uint32_t IscsiConnection::end_spc2_reservations(Task& waiter, uint32_t vdisk, bool all,
                                                ReservationRequest::Kind kind) {
  if (!setup_.on_reservation) return 0;
  uint32_t asked = 0;
  for (const Unit& u : setup_.units) {
    const Reservations* r = u.lu.reservations.get();
    if (!r || !r->reserved || !(all || u.lu.volume == vdisk)) continue;
    if (kind == ReservationRequest::Kind::nexus_lost && !(r->reserved_by == setup_.nexus))
      continue;
    ReservationRequest request;
    request.kind = kind;
    ++waiter.cluster_waits;
    ++asked;
    setup_.on_reservation(this, &waiter, u.lu.volume, request);
  }
  return asked;
}

}  // namespace sve::iscsi

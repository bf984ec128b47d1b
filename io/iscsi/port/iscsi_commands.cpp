// What the connection does with each PDU of the full-feature phase: SCSI
// commands (planned by io/scsi, served by the facility stack or answered
// here), their Data-Out and R2Ts, NOP and Text (task management and
// logout: iscsi_task_management.cpp; task attributes: iscsi_task_set.cpp).
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "io/iscsi/port/iscsi_connection.hpp"

namespace sve::iscsi {
namespace {

constexpr uint8_t kFinalBit = 0x80;
constexpr uint8_t kContinueBit = 0x40;  // (Text)
constexpr uint8_t kWriteBit = 0x20;     // (SCSI Command)

using scsi::kInquiry;
using scsi::kReportLuns;
using scsi::kRequestSense;
using scsi::kTestUnitReady;

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

bool takes_cmd_sn(uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::scsi_command:
    case Op::nop_out:
    case Op::text:
    case Op::task_management:
    case Op::logout: return true;
    default: return false;
  }
}

}  // namespace

void Task::io_done(IoRequestPtr done) {
  request = std::move(done);
  connection->completed(*this);
}

bool IscsiConnection::TaskWaiter::on_grant() {
  connection->got_task();
  return true;
}

bool IscsiConnection::PagesWaiter::on_grant() {
  BufferRef b = connection->core_.buffers().build(*account, bytes);
  if (!b) return false;
  connection->got_buffer(std::move(b));
  return true;
}

void IscsiConnection::on_header() {
  if (bhs_.opcode() == static_cast<uint8_t>(Op::data_out)) return begin_data_out();
  begin_task();
}

// Every PDU but Data-Out is answered: it takes a task, and a unit of the
// connection's account with it; with none free the connection waits (and
// stops receiving).
void IscsiConnection::begin_task() {
  phase_ = Phase::task;
  if (requests_account_.acquire_or_wait(task_waiter_)) return got_task();
  ++stats_.waits;
}

void IscsiConnection::got_task() {
  Task* t = tasks_.take();
  t->connection = this;
  t->command = bhs_;
  t->request.reset();
  t->in_stack = false;
  t->owns_unit = true;
  t->counted = false;
  t->status = scsi::Status::good;
  t->sense = {};
  t->data.clear();
  t->expected = 0;
  t->transfer = 0;
  t->received = t->buffer_bytes = t->asked = t->unsolicited = 0;
  t->r2t_sn = t->r2ts_out = t->ttt = t->data_sn = 0;
  t->awaiting_data = t->aborted = t->finished = false;
  t->ended_by_other = t->draining = false;
  t->sense_information.reset();
  t->verify = t->compare = false;
  t->data_out = 0;
  t->flow = scsi::Flow::one;
  t->unmap = t->mode_ten = false;
  t->allocation = 0;
  t->ranges.clear();
  t->range_at = 0;
  t->range_done = 0;
  t->queued = 0;
  t->waiter = nullptr;
  t->waiting_for = 0;
  t->cluster_waits = 0;
  t->released = false;
  t->in_set = t->held = false;
  live_.push_back(*t);
  ++outstanding_;
  const uint8_t op = bhs_.opcode();
  if (takes_cmd_sn(op)) {
    const bool immediate = bhs_.immediate();
    const uint32_t cmd_sn = bhs_.get32(24);
    // Out of order, or past MaxCmdSN: ignored, as RFC 7143 says.
    if (!immediate && window_used_ >= setup_.command_window) {
      spdlog::warn("iscsi: {}: CmdSN {} past MaxCmdSN: ignored", setup_.initiator, cmd_sn);
      t->finished = true;
      settle(*t);
      return receive_data(Sink::discard, nullptr, 0, 0);
    }
    if (!window_.take(cmd_sn, immediate, setup_.command_window - window_used_)) {
      spdlog::warn("iscsi: {}: CmdSN {} where {} was expected: ignored", setup_.initiator,
                   cmd_sn, window_.exp_cmd_sn());
      t->finished = true;
      settle(*t);
      return receive_data(Sink::discard, nullptr, 0, 0);
    }
    if (!immediate) {
      t->counted = true;
      ++window_used_;
    }
    // (Whatever it is, it may fill the gap a held ORDERED command waits on.)
    if (session_->held) post_release();
  }
  switch (static_cast<Op>(op)) {
    case Op::scsi_command: return begin_scsi(*t);
    case Op::nop_out:
    case Op::text:
    case Op::task_management:
    case Op::logout: return receive_data(Sink::control, t, 0, 0);
    default: {
      // SNACK (error recovery level 0 has none) or a login in the
      // full-feature phase: rejected, with the header sent back.
      const bool snack = op == static_cast<uint8_t>(Op::snack);
      Numbers n = numbers();
      Bhs h = iscsi::reject(snack ? RejectReason::command_not_supported
                                  : RejectReason::protocol_error,
                            n);
      stat_sn_ = n.stat_sn;
      t->data.assign(header_, header_ + kBhsBytes);
      t->finished = true;
      queue(t, h, false, 0, kBhsBytes, true);
      return receive_data(Sink::discard, nullptr, 0, 0);
    }
  }
}

const Unit* IscsiConnection::unit_of(uint64_t lun_field) const {
  uint16_t lun = 0;
  if (!scsi::decode_lun(lun_field, lun)) return nullptr;
  for (const Unit& u : setup_.units)
    if (u.lun == lun) return &u;
  return nullptr;
}

// What this node's port is while its gate is closed (none while it is
// open: the paths say). A closed gate is usually the next generation
// forming, a few round trips or a lease: the port says transitioning, so
// that an ALUA host retries on it (Linux's ALUA handler does, up to the
// transition time REPORT TARGET PORT GROUPS gives) instead of failing the
// path, as NBD's requests are held meanwhile. A gate closed longer is a
// node out of the cluster: unavailable, and hosts go elsewhere.
std::optional<scsi::AccessState> IscsiConnection::closed_state() const {
  if (!setup_.gate || setup_.gate->open()) return std::nullopt;
  return setup_.gate->closed_for_ms() < setup_.transition_ms ? scsi::AccessState::transitioning
                                                             : scsi::AccessState::unavailable;
}

void IscsiConnection::plan_scsi(Task& t, const uint8_t* cdb, scsi::Plan& plan) {
  const Unit* unit = unit_of(bhs_.lun());
  if (cdb[0] == kReportLuns) {
    std::vector<uint16_t> luns;
    for (const Unit& u : setup_.units) luns.push_back(u.lun);
    plan.data_in = scsi::report_luns(luns, be32(cdb + 6));
    return;
  }
  if (!unit) {
    // No such LUN: INQUIRY says so (peripheral qualifier 3), REQUEST
    // SENSE reports it, anything else fails.
    if (cdb[0] == kInquiry) {
      plan = scsi::plan(cdb, 16, scsi::LogicalUnit{});
      if (plan.status == scsi::Status::good && !plan.data_in.empty()) plan.data_in[0] = 0x7f;
    } else if (cdb[0] == kRequestSense) {
      plan.data_in = scsi::fixed_sense(scsi::sense::lun_not_supported);
      plan.data_in.resize(std::min<size_t>(plan.data_in.size(), cdb[4]));
    } else {
      plan.status = scsi::Status::check_condition;
      plan.sense = scsi::sense::lun_not_supported;
    }
    return;
  }
  // A unit attention pending for the LUN is reported instead (REQUEST
  // SENSE returns it as its data; INQUIRY and REPORT LUNS run).
  if (auto attention = attentions_.take(unit->lun, cdb[0])) {
    if (cdb[0] == kRequestSense) {
      plan.data_in = scsi::fixed_sense(*attention);
      plan.data_in.resize(std::min<size_t>(plan.data_in.size(), cdb[4]));
    } else {
      plan.status = scsi::Status::check_condition;
      plan.sense = *attention;
    }
    return;
  }
  const std::optional<scsi::AccessState> closed = closed_state();
  if (closed) {
    // The gate's state for this port, in REPORT TARGET PORT GROUPS and in
    // what the other commands are refused with (a copy: only while closed).
    scsi::LogicalUnit lu = unit->lu;
    for (scsi::PortGroup& g : lu.port_groups)
      if (g.id == lu.port_group) g.state = *closed;
    plan = scsi::plan(cdb, 16, lu, &setup_.nexus);
  } else {
    plan = scsi::plan(cdb, 16, unit->lu, &setup_.nexus);
  }
  if ((plan.io || cdb[0] == kTestUnitReady || plan.flow == scsi::Flow::reservation) && closed) {
    // A node without a lease serves nothing.
    plan = scsi::Plan{};
    plan.status = scsi::Status::check_condition;
    plan.sense = *closed == scsi::AccessState::transitioning ? scsi::sense::port_transitioning
                                                             : scsi::sense::port_unavailable;
  }
  if (plan.io || plan.data_out) {
    // (A flow's own Data-Out, or a compare-and-write's, is what it
    // moves; a transfer's, its range.)
    t.transfer = plan.flow == scsi::Flow::one && !read_modify_write(plan.op)
                     ? plan.length
                     : plan.data_out;
    t.volume = unit->lu.volume;
  }
}

void IscsiConnection::begin_scsi(Task& t) {
  ++stats_.commands;
  t.expected = bhs_.get32(20);
  // Its task set: the session's (one I_T nexus) commands of its LUN.
  t.attribute = bhs_.flags() & kAttributeMask;
  t.cmd_sn = bhs_.get32(24);
  t.immediate = bhs_.immediate();
  if (!scsi::decode_lun(bhs_.lun(), t.lun)) t.lun = 0xffff;
  t.in_set = true;
  if (t.attribute == kOrdered) ++session_->ordered_in_set;
  scsi::Plan plan;
  plan_scsi(t, bhs_.data() + 32, plan);
  t.status = plan.status;
  t.sense = plan.sense;
  t.data = std::move(plan.data_in);
  const bool write = plan.io && plan.op == IoOp::write && plan.flow == scsi::Flow::one;
  t.verify = plan.verify;
  t.compare = plan.compare;
  t.data_out = static_cast<uint32_t>(plan.data_out);
  t.flow = plan.flow;
  t.unmap = plan.unmap;
  t.mode_ten = plan.mode_ten;
  t.allocation = plan.allocation;
  // Less Data-Out than the CDB says (less to compare, a parameter list
  // cut short), or for WRITE SAME, COMPARE AND WRITE and ORWRITE any
  // other size than theirs.
  const bool flow_data = t.verify || plan.flow != scsi::Flow::one;
  const bool exact = plan.flow == scsi::Flow::write_same ||
                     (plan.io && read_modify_write(plan.op));
  // No ACA here (INQUIRY's NormACA is 0): a command with the ACA attribute
  // is refused as one whose CONTROL byte asks for ACA is (io/scsi).
  const bool aca = t.attribute == kAca;
  if (aca || (flow_data && t.expected < t.data_out) || (exact && t.expected != t.data_out)) {
    plan.io = false;
    plan.flow = t.flow = scsi::Flow::one;
    t.data_out = 0;
    t.transfer = 0;
    t.data.clear();
    t.status = scsi::Status::check_condition;
    t.sense = aca ? scsi::sense::invalid_field_in_cdb : scsi::sense::invalid_field_in_iu;
  }
  if (write && t.expected < t.transfer) {
    // The initiator sends less than the command writes (an overflow): what
    // comes is written if it is whole blocks (FCP-4's first choice), else
    // nothing is and the command fails. The residual says what was cut.
    if (t.expected % scsi::kBlockBytes == 0 && t.expected > 0) {
      plan.length = t.expected;
    } else {
      plan.io = false;
      if (t.expected > 0) {
        t.status = scsi::Status::check_condition;
        t.sense = scsi::sense::invalid_field_in_iu;
      }
    }
  }
  if (plan.io || t.flow == scsi::Flow::mode_select || t.flow == scsi::Flow::reservation) {
    // The task's unit goes to its request (for MODE SELECT, only the
    // context that receives its parameter list: it is never sent).
    IoRequestPtr io = core_.requests().make(requests_account_);
    io->op = plan.op;
    io->flags = plan.flags;
    io->volume = t.volume;
    io->offset = plan.offset;
    io->length = plan.length;
    io->cookie = bhs_.initiator_task_tag();
    io->client = &t;
    t.request = std::move(io);
    t.owns_unit = false;
  }
  const uint64_t bytes = t.request ? buffer_bytes_for(t) : 0;
  if (bytes > 0) {
    phase_ = Phase::buffer;
    current_ = &t;
    pages_waiter_.bytes = bytes;
    pages_waiter_.need = BufferPool::pages_for(bytes);
    if (buffers_account_.acquire_or_wait(pages_waiter_)) {
      BufferRef b = core_.buffers().build(buffers_account_, bytes);
      if (b) return got_buffer(std::move(b));
      buffers_account_.release(pages_waiter_.need);  // fragmented: wait for frees
      buffers_account_.wait(pages_waiter_);
    }
    ++stats_.waits;
    return;
  }
  receive_data(Sink::command, &t, 0, 0);
}

void IscsiConnection::got_buffer(BufferRef buffer) {
  Task& t = *current_;
  t.request->buffer = std::move(buffer);
  const bool write = t.request->op == IoOp::write && t.flow == scsi::Flow::one;
  t.buffer_bytes = write ? static_cast<uint32_t>(t.request->length) : t.data_out;
  receive_data(Sink::command, &t, 0, t.buffer_bytes);
}

// The command's immediate data is in (or dropped).
void IscsiConnection::scsi_data_in(Task& t) {
  const bool write = t.request && t.request->op == IoOp::write;
  const uint32_t immediate = layout_.data_bytes;
  if (t.expected > 0 && (t.command.flags() & kWriteBit)) {
    // Data the initiator sends whatever the command: take it in order (and
    // drop what the command does not write).
    WritePlan w = plan_write(setup_.params, t.expected, immediate, t.command.final());
    if (!w.valid)
      return end("a write's data against the negotiated rules (ImmediateData, "
                 "FirstBurstLength, InitialR2T)");
    t.received = immediate;
    t.unsolicited = w.unsolicited;
    t.asked = w.unsolicited;
    if ((write || t.data_out) && t.request && t.received < t.expected) {
      t.awaiting_data = true;
      t.ttt = next_ttt_++;
      if (next_ttt_ == kNoTag) next_ttt_ = 1;
      awaiting_.push_back(&t);
      ask_for_data(t);
      return receive_header();
    }
  } else if (immediate) {
    return end("immediate data for a command that sends none");
  }
  proceed(t);
  receive_header();
}

// R2Ts for the rest of a write, MaxBurstLength each, at most
// MaxOutstandingR2T out at a time.
void IscsiConnection::ask_for_data(Task& t) {
  const uint32_t burst = std::max<uint32_t>(setup_.params.max_burst_length, 512);
  const uint32_t limit = std::max<uint32_t>(setup_.params.max_outstanding_r2t, 1);
  while (t.r2ts_out < limit && t.asked < t.expected) {
    const uint32_t length = std::min(burst, t.expected - t.asked);
    Bhs h = iscsi::r2t(t.command.initiator_task_tag(), t.command.lun(), t.ttt, t.r2t_sn++, t.asked,
                       length, numbers());
    t.asked += length;
    ++t.r2ts_out;
    ++stats_.r2ts;
    queue(&t, h, false, 0, 0, false);
  }
}

void IscsiConnection::begin_data_out() {
  const uint32_t itt = bhs_.initiator_task_tag();
  const uint32_t ttt = bhs_.get32(20);
  const uint32_t offset = bhs_.get32(40);
  const uint32_t length = layout_.data_bytes;
  Task* t = nullptr;
  for (Task* a : awaiting_)
    if (a->command.initiator_task_tag() == itt) t = a;
  // Data for a command already answered (refused, or aborted) is dropped.
  if (!t) return receive_data(Sink::discard, nullptr, 0, 0);
  if (ttt != kNoTag && ttt != t->ttt) return end("a Data-Out with a transfer tag not given");
  if (offset != t->received) return end("a Data-Out out of order");
  const uint32_t limit = ttt == kNoTag ? t->unsolicited : t->asked;
  if (offset > limit || length > limit - offset) return end("a Data-Out beyond what was asked for");
  // DataSN counts the Data-Out PDUs of a sequence: the unsolicited ones
  // (after any immediate data), or one R2T's burst, each from 0.
  const uint32_t burst = std::max<uint32_t>(setup_.params.max_burst_length, 512);
  if (offset >= t->unsolicited && (offset - t->unsolicited) % burst == 0) t->data_sn = 0;
  if (bhs_.get32(36) != t->data_sn++) return end("a Data-Out with a DataSN out of sequence");
  receive_data(Sink::data_out, t, offset, t->buffer_bytes);
}

void IscsiConnection::data_out_in(Task& t) {
  t.received += layout_.data_bytes;
  if (t.received > t.unsolicited && t.r2ts_out > 0) {
    // The bursts asked for that are complete.
    const uint32_t burst = std::max<uint32_t>(setup_.params.max_burst_length, 512);
    const uint32_t asked_bursts = (t.asked - t.unsolicited + burst - 1) / burst;
    const uint32_t done_bursts = t.received == t.expected
                                     ? asked_bursts
                                     : (t.received - t.unsolicited) / burst;
    t.r2ts_out = asked_bursts - std::min(asked_bursts, done_bursts);
  }
  if (t.received == t.expected) {
    t.awaiting_data = false;
    awaiting_.erase(std::find(awaiting_.begin(), awaiting_.end(), &t));
    proceed(t);
  } else {
    ask_for_data(t);
  }
  receive_header();
}

void IscsiConnection::submit(Task& t) {
  t.in_stack = true;
  if (t.verify) t.request->buffer_offset = t.data_out;
  const unsigned core = route_.core_of(t.request->volume);
  if (core == route_.home) return route_.tops[core]->submit(IoRequestPtr(t.request));
  IoServer* top = route_.tops[core];
  ++stats_.remote;
  route_.post(core, [top, request = t.request] { top->submit(request); });
}

void IscsiConnection::completed(Task& t) {
  if (CoreIo::current() != &core_) {  // served by another core's stack
    route_.post(route_.home, [this, &t] { completed(t); });
    return;
  }
  t.in_stack = false;
  if (t.ended_by_other) {  // (whatever the stack did, the answer is TASK ABORTED)
    const bool was_draining = t.draining;
    t.draining = false;
    t.status = scsi::Status::task_aborted;
    t.sense = {};
    t.request->buffer.reset();
    conclude(t);
    if (was_draining && --draining_ == 0) {
      std::vector<std::function<void()>> waiters;
      waiters.swap(drained_waiters_);
      for (auto& done : waiters) done();
    }
    return;
  }
  IoRequest& r = *t.request;
  if (r.status == 0 && !t.aborted && t.flow != scsi::Flow::one && next_piece(t))
    return submit(t);  // the next piece of a WRITE SAME or an UNMAP
  if (r.status == 0 && t.flow == scsi::Flow::lba_status) lba_status_in(t);
  if (r.status != 0) {
    t.status = scsi::Status::check_condition;
    t.sense = scsi::sense_of_error(r.status, data_out_bytes(r.op, 1) > 0);
    if (r.status == EILSEQ && r.op == IoOp::compare_and_write)
      t.sense_information = static_cast<uint32_t>(r.miscompare_at);
    r.buffer.reset();
  } else if (t.verify) {
    // What was read is checked, not sent: against the Data-Out (the
    // buffer's first bytes) if it came.
    if (t.compare) {
      std::vector<uint8_t> expected(t.data_out), medium(r.length);
      r.buffer->copy_out(0, t.data_out, expected.data());
      r.buffer->copy_out(r.buffer_offset, r.length, medium.data());
      const int64_t at =
          scsi::verify_data(expected.data(), expected.size(), medium.data(), medium.size());
      if (at >= 0) {
        t.status = scsi::Status::check_condition;
        t.sense = scsi::sense::miscompare;
        t.sense_information = static_cast<uint32_t>(at);
      }
    }
    r.buffer.reset();
  } else if (r.op != IoOp::read || t.flow == scsi::Flow::prefetch) {
    r.buffer.reset();  // only a read's answer needs its buffer (PRE-FETCH sends none)
  }
  conclude(t);
}

// A command back from the stack (or the cluster): answered, or dropped if
// it was aborted; then a logout and the connection's end may go on.
void IscsiConnection::conclude(Task& t) {
  if (t.aborted) {
    t.finished = true;
    release_waiter(t);
    settle(t);
  } else {
    answer(t);
  }
  maybe_logout();
  maybe_finish();
}

// A SCSI command's answer: Data-In with the status in the last PDU, or a
// SCSI Response (with sense data for a CHECK CONDITION).
void IscsiConnection::answer(Task& t) {
  if (t.counted) {  // answered: its place in the window frees
    t.counted = false;
    --window_used_;
  }
  const uint32_t itt = t.command.initiator_task_tag();
  if (t.status != scsi::Status::good) ++stats_.errors;
  Numbers n = numbers();
  const bool read_data = t.request && t.request->op == IoOp::read && t.request->buffer;
  const uint64_t bytes = read_data ? t.transfer : t.data.size();
  if (t.status == scsi::Status::good && bytes > 0 && t.expected > 0) {
    auto pdus = data_in(itt, t.command.lun(), bytes, t.expected, setup_.params.initiator_max_recv,
                        n, setup_.params.max_burst_length);
    for (size_t i = 0; i < pdus.size(); ++i)
      queue(&t, pdus[i].header, read_data, pdus[i].offset, pdus[i].length, i + 1 == pdus.size());
  } else {
    // (Good with nothing to send: a read of nothing, or one whose
    // initiator expects nothing, which is an overflow.)
    const bool write = t.command.flags() & kWriteBit;
    uint64_t moved = t.verify ? t.data_out
                     : write  ? t.transfer
                     : t.status == scsi::Status::good ? bytes : 0;
    Residual residual = residual_of(t.expected, moved);
    std::vector<uint8_t> sense;
    if (t.status == scsi::Status::check_condition)
      sense = scsi::fixed_sense(t.sense, t.sense_information);
    Response response = scsi_response(itt, static_cast<uint8_t>(t.status), sense, residual,
                                      t.r2t_sn, n);
    t.data = std::move(response.data);
    queue(&t, response.header, false, 0, static_cast<uint32_t>(t.data.size()), true);
  }
  stat_sn_ = n.stat_sn;
  t.finished = true;
  release_waiter(t);
  settle(t);
}

void IscsiConnection::control_data_in(Task& t) {
  switch (static_cast<Op>(t.command.opcode())) {
    case Op::nop_out: respond_nop(t); break;
    case Op::text: respond_text(t); break;
    case Op::task_management: task_management(t); break;
    case Op::logout: logout(t); break;
    default: break;
  }
  receive_header();
}

void IscsiConnection::respond_nop(Task& t) {
  if (t.counted) {
    t.counted = false;
    --window_used_;
  }
  t.finished = true;
  if (t.command.initiator_task_tag() == kNoTag) return settle(t);  // an answer to a ping of ours
  t.data.swap(control_data_);  // the ping's data goes back
  Numbers n = numbers();
  Bhs h = nop_in(t.command, static_cast<uint32_t>(t.data.size()), n);
  stat_sn_ = n.stat_sn;
  queue(&t, h, false, 0, static_cast<uint32_t>(t.data.size()), true);
}

// In the full-feature phase a Text Request asks for SendTargets (this
// target's portals); other keys are not understood. A text continued over
// several PDUs is not taken.
void IscsiConnection::respond_text(Task& t) {
  if (t.counted) {
    t.counted = false;
    --window_used_;
  }
  std::vector<TextPair> answers;
  if (t.command.flags() & kContinueBit) {
    answers.push_back({"X-sve-error", "continued text is not supported"});
  } else if (auto keys = parse_text(control_data_.data(), control_data_.size())) {
    for (const TextPair& p : keys.value()) {
      if (p.key == "SendTargets" && setup_.send_targets) {
        for (TextPair& a : setup_.send_targets(p.value)) answers.push_back(std::move(a));
      } else {
        answers.push_back({p.key, "NotUnderstood"});
      }
    }
  }
  const std::string text = format_text(answers);
  t.data.assign(text.begin(), text.end());
  Numbers n = numbers();
  Bhs h = text_response(t.command, static_cast<uint32_t>(t.data.size()), n);
  stat_sn_ = n.stat_sn;
  t.finished = true;
  queue(&t, h, false, 0, static_cast<uint32_t>(t.data.size()), true);
}

// A SCSI command of the session's by its tag, on whichever connection it
// came (a task management function may come by another).
Task* IscsiConnection::find_live(uint32_t itt) {
  for (IscsiConnection* c : session_->connections)
    for (Task& t : c->live_)
      if (t.command.opcode() == static_cast<uint8_t>(Op::scsi_command) &&
          t.command.initiator_task_tag() == itt)
        return &t;
  return nullptr;
}

}  // namespace sve::iscsi

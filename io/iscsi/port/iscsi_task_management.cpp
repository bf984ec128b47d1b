// Task management and logout on a connection of the full-feature phase
// (RFC 7143 11.5, 11.14; SAM-5 7): aborting tasks (this connection's, or
// the session's through another connection), LUN and target resets with
// their unit attentions here and on the other nodes, and logout, of the
// connection or the whole session. Split from iscsi_commands.cpp, which
// serves the commands themselves.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "io/iscsi/port/iscsi_connection.hpp"

namespace sve::iscsi {
namespace {

// Task management functions (RFC 7143 11.5.1) and responses (11.6.1).
enum : uint8_t {
  kAbortTask = 1,
  kAbortTaskSet = 2,
  kClearAca = 3,
  kClearTaskSet = 4,
  kLunReset = 5,
  kTargetWarmReset = 6,
  kTargetColdReset = 7,
  kTaskReassign = 8,
};
// Logout reasons and responses (RFC 7143 11.14.1, 11.15.1).
enum : uint8_t { kCloseSession = 0, kCloseConnection = 1 };
enum : uint8_t { kLogoutClosed = 0, kLogoutCidNotFound = 1, kLogoutRecoveryNotSupported = 2 };
enum : uint8_t {
  kFunctionComplete = 0,
  kTaskDoesNotExist = 1,
  kReassignNotSupported = 3,
  kFunctionNotSupported = 5,
  kFunctionRejected = 255,
};

}  // namespace

// Ends `target` (a task of this connection's) without an answer: at once
// if its data is still awaited, else once the stack is done with it; `by`
// (on this connection or another of the session) answers after that.
void IscsiConnection::abort(Task& target, Task& by) {
  if (target.finished || target.aborted) return;
  target.aborted = true;
  if (target.held) {
    unhold(target);
    target.finished = true;
    settle(target);
    return;
  }
  if (target.awaiting_data) {
    target.awaiting_data = false;
    awaiting_.erase(std::find(awaiting_.begin(), awaiting_.end(), &target));
    target.finished = true;
    settle(target);
    return;
  }
  if (target.in_stack) {
    target.waiter = &by;
    ++by.waiting_for;
  }
}

// Another nexus's PREEMPT AND ABORT took this nexus's registration (SPC-4
// 5.13.11.2.6), or another nexus reset the unit (SAM-5 7.6, 7.10): this
// nexus's tasks for the unit end, each answered TASK ABORTED (the control
// page's TAS). Those the stack has are answered when they come back, and
// counted until then; those on their way to it (a buffer, their data) are
// answered instead of being sent. Reservation commands are left to the
// cluster, which orders them after the preemption or reset anyway.
void IscsiConnection::end_for_other(uint16_t lun) {
  std::vector<Task*> now;
  for (Task& t : live_) {
    uint16_t its = 0;
    if (t.command.opcode() != static_cast<uint8_t>(Op::scsi_command) || t.finished ||
        t.aborted || t.ended_by_other || t.flow == scsi::Flow::reservation ||
        !scsi::decode_lun(t.command.lun(), its) || its != lun)
      continue;
    t.ended_by_other = true;
    if (t.in_stack) {
      t.draining = true;
      ++draining_;
    } else if (t.awaiting_data) {
      t.awaiting_data = false;
      awaiting_.erase(std::find(awaiting_.begin(), awaiting_.end(), &t));
      now.push_back(&t);  // (answered after the walk: answering may give it back)
    } else if (t.held) {
      unhold(t);
      now.push_back(&t);
    }
  }
  for (Task* t : now) answer_ended(*t);
}

// `done` once every task ended by another nexus is out of the stack.
void IscsiConnection::when_drained(std::function<void()> done) {
  if (draining_ == 0) return done();
  drained_waiters_.push_back(std::move(done));
}

void IscsiConnection::answer_ended(Task& t) {
  if (t.request) t.request->buffer.reset();
  t.status = scsi::Status::task_aborted;
  t.sense = {};
  t.data.clear();
  answer(t);
}

void IscsiConnection::release_waiter(Task& t) {
  Task* waiter = t.waiter;
  t.waiter = nullptr;
  if (waiter) waiter->connection->waited(*waiter);
}

// A task management function given back before what it waited for was
// over (its connection ended): nothing may call it any more.
void IscsiConnection::forget_waiter(Task& by) {
  for (IscsiConnection* c : session_->connections)
    for (Task& t : c->live_)
      if (t.waiter == &by) t.waiter = nullptr;
}

void IscsiConnection::reset_told(Task& tmf) { waited(tmf); }

void IscsiConnection::waited(Task& waiter) {
  if (--waiter.waiting_for > 0) return;
  // Every task it waited for is over (and the other nodes know of its
  // reset): the task management function's response goes now.
  Numbers n = numbers();
  Bhs h = task_response(waiter.command, kFunctionComplete, n);
  stat_sn_ = n.stat_sn;
  waiter.finished = true;
  queue(&waiter, h, false, 0, 0, true);
}

void IscsiConnection::task_management(Task& t) {
  if (t.counted) {
    t.counted = false;
    --window_used_;
  }
  const uint8_t function = t.command.flags() & 0x7f;
  const uint64_t lun = t.command.lun();
  uint8_t response = kFunctionComplete;
  switch (function) {
    case kAbortTask: {
      Task* target = find_live(t.command.get32(20));
      if (target && target != &t) {
        target->connection->abort(*target, t);
      } else if (sn_less(t.command.get32(32), window_.exp_cmd_sn())) {
        // Received and already answered: its RefCmdSN is behind the window
        // (RFC 7143 11.6.1 c). One not received yet, in the window, is
        // "Function complete", and its CmdSN counts as received (b).
        response = kTaskDoesNotExist;
      } else {
        window_.consider_received(t.command.get32(32));
      }
      break;
    }
    case kAbortTaskSet:
    case kClearTaskSet:
    case kLunReset:
    case kTargetWarmReset:
    case kTargetColdReset: {
      // The nexus's tasks, on every connection of the session (chosen
      // first: aborting one may give it back).
      std::vector<Task*> targets;
      for (IscsiConnection* c : session_->connections)
        for (Task& other : c->live_)
          if (&other != &t && other.command.opcode() == static_cast<uint8_t>(Op::scsi_command) &&
              (function >= kTargetWarmReset || other.command.lun() == lun))
            targets.push_back(&other);
      for (Task* other : targets) other->connection->abort(*other, t);
      if (function == kLunReset || function >= kTargetWarmReset) reset(t, function, lun);
      if (function == kTargetColdReset) close_after_send_ = true;
      break;
    }
    case kClearAca: response = kFunctionNotSupported; break;
    case kTaskReassign: response = kReassignNotSupported; break;
    default: response = kFunctionRejected; break;
  }
  spdlog::info("iscsi: {}: task management function {} on LUN field {:#x}: {}",
               setup_.initiator, function, lun,
               t.waiting_for ? "waiting for the tasks it ends" : "answered");
  if (t.waiting_for) return;  // answered once they are over
  Numbers n = numbers();
  Bhs h = task_response(t.command, response, n);
  stat_sn_ = n.stat_sn;
  t.finished = true;
  queue(&t, h, false, 0, 0, true);
}

// A LUN reset (or a target reset) is a unit attention for every nexus
// that reaches the vdisk (them all): this one now, the node's others
// through the port, the other nodes' before the function is answered.
void IscsiConnection::reset(Task& tmf, uint8_t function, uint64_t lun_field) {
  const bool all = function != kLunReset;
  const Unit* unit = all ? nullptr : unit_of(lun_field);
  if (!all && !unit) return;  // no such LUN: nothing was reset
  const uint32_t vdisk = unit ? unit->lu.volume : 0;
  unit_attention(vdisk, all, all ? scsi::sense::reset_occurred : scsi::sense::lun_reset_occurred);
  if (setup_.on_reset && setup_.on_reset(this, &tmf, vdisk, all)) ++tmf.waiting_for;
  // A reset ends SPC-2 reservations (not persistent ones): answered once
  // the cluster has it.
  tmf.waiting_for +=
      end_spc2_reservations(tmf, vdisk, all, ReservationRequest::Kind::reset);
}

void IscsiConnection::unit_attention(uint32_t vdisk, bool all, const scsi::Sense& sense) {
  for (const Unit& u : setup_.units)
    if (all || u.lu.volume == vdisk) attentions_.establish(u.lun, sense);
}

void IscsiConnection::reset_elsewhere(uint32_t vdisk, bool all, std::function<void()> done) {
  unit_attention(vdisk, all, all ? scsi::sense::reset_occurred : scsi::sense::lun_reset_occurred);
  for (const Unit& u : setup_.units)
    if (all || u.lu.volume == vdisk) end_for_other(u.lun);
  when_drained(std::move(done));
}

bool IscsiConnection::set_units(std::vector<Unit> units) {
  bool inventory_changed = false;  // a LUN added or unmapped
  std::vector<uint16_t> preempted;
  for (const Unit& now : units) {
    const Unit* before = nullptr;
    for (const Unit& u : setup_.units)
      if (u.lun == now.lun) before = &u;
    if (!before) {
      inventory_changed = true;
      continue;
    }
    if (before->lu.blocks != now.lu.blocks)
      attentions_.establish(now.lun, scsi::sense::capacity_changed);
    // An implicit ALUA transition: hosts look at the port groups again.
    if (before->lu.port_groups != now.lu.port_groups)
      attentions_.establish(now.lun, scsi::sense::access_state_changed);
    // Another nexus's reservation change that preempted this one's
    // registration or released the reservation it shared. (A connection
    // that saw no reservations had none to lose: what an earlier change
    // told is not for it.)
    const Reservations* was = before->lu.reservations.get();
    const Reservations* is = now.lu.reservations.get();
    uint16_t told = 0;
    if (was && is && was->attention != is->attention && sve::told(*is, setup_.nexus, told)) {
      attentions_.establish(now.lun, {0x06, static_cast<uint8_t>(told >> 8),
                                      static_cast<uint8_t>(told)});
      if (is->told_abort) preempted.push_back(now.lun);
    }
  }
  // A LUN unmapped: its commands from now on find no such LUN (those in
  // the stack finish); the others are told the inventory changed.
  for (const Unit& u : setup_.units) {
    bool kept = false;
    for (const Unit& now : units) kept |= now.lun == u.lun;
    inventory_changed |= !kept;
  }
  setup_.units = std::move(units);
  if (inventory_changed)
    for (const Unit& u : setup_.units) attentions_.establish(u.lun, scsi::sense::luns_changed);
  // (After the new state is in: commands from here on meet the preemption.)
  for (uint16_t lun : preempted) end_for_other(lun);
  if (preempted.empty() || draining_ == 0 || !setup_.on_preempt_drained) return false;
  drained_waiters_.push_back(setup_.on_preempt_drained);
  return true;
}

// A Logout (RFC 7143 11.14) closes the session (reason 0: every
// connection of it), this connection (1), or another connection of the
// session, named by its CID (1: that one closes, this one answers at once).
// One closing this connection is answered once every other command of it
// is: nothing is in flight when it closes after the response. Removing a
// connection for recovery (2) needs error recovery level 2: refused.
void IscsiConnection::logout(Task& t) {
  if (t.counted) {
    t.counted = false;
    --window_used_;
  }
  const uint8_t reason = t.command.flags() & 0x7f;
  const uint16_t cid = t.command.get16(20);
  if (reason == kCloseConnection && cid != setup_.cid) {
    // (One by that CID already ending was replaced by a login with it, or
    // logged out: it is not the one named.)
    IscsiConnection* other = nullptr;
    for (IscsiConnection* c : session_->connections)
      if (c != this && c->setup_.cid == cid && c->phase_ != Phase::closing) other = c;
    if (other) other->end("logged out by another connection of its session");
    // (Its login answered, the initiator may name it before the port has
    // handed it to this core.)
    bool arriving = !other && setup_.log_out_arriving && setup_.log_out_arriving(cid);
    return answer_logout(t, other || arriving ? kLogoutClosed : kLogoutCidNotFound);
  }
  if (reason != kCloseSession && reason != kCloseConnection)
    return answer_logout(t, kLogoutRecoveryNotSupported);
  logout_ = &t;
  maybe_logout();
}

void IscsiConnection::answer_logout(Task& t, uint8_t response) {
  Numbers n = numbers();
  Bhs h = logout_response(t.command, n, response);
  stat_sn_ = n.stat_sn;
  t.finished = true;
  queue(&t, h, false, 0, 0, true);
}

void IscsiConnection::maybe_logout() {
  if (!logout_) return;
  for (const Task& other : live_)
    if (&other != logout_ && !other.finished) return;
  Task& t = *logout_;
  const bool whole_session = (t.command.flags() & 0x7f) == kCloseSession;
  // The nexus ends (the session does): so do its SPC-2 reservations,
  // before the response (the initiator may log in again and find them
  // gone).
  if (!t.released && (whole_session || session_->connections.size() == 1)) {
    t.released = true;
    end_spc2_reservations(t, 0, true, ReservationRequest::Kind::nexus_lost);
  }
  if (t.cluster_waits) return;
  logout_ = nullptr;
  if (whole_session) {
    std::vector<IscsiConnection*> others;
    for (IscsiConnection* c : session_->connections)
      if (c != this) others.push_back(c);
    for (IscsiConnection* c : others) c->end("its session logged out");
  }
  close_after_send_ = true;
  answer_logout(t, kLogoutClosed);
}

}  // namespace sve::iscsi

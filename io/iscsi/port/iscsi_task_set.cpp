// A nexus's task set (SAM-5 8.6; the control page's TST 001b): a
// session's SCSI commands of one LUN, from their arrival until they are
// given back, across its connections. A command ready to start starts, or
// is held until the attributes of the older ones in its set allow it; a
// task that leaves the set, or a command that fills a CmdSN gap, has the
// held ones looked at again (docs/iscsi.md, "Task attributes").
#include <algorithm>

#include "io/iscsi/port/iscsi_connection.hpp"

namespace sve::iscsi {

void IscsiConnection::proceed(Task& t) {
  if (!may_start(t)) {
    t.held = true;
    ++session_->held;
    return;
  }
  if (t.request)
    start_io(t);
  else
    answer(t);
}

namespace {
bool older(const Task& a, const Task& b) {
  return static_cast<int32_t>(a.cmd_sn - b.cmd_sn) < 0;
}
}  // namespace

// SAM-5 8.6 within the task's set: HEAD OF QUEUE starts at once; SIMPLE
// once no older ORDERED task is in the set; ORDERED once no older task is
// (and none can still come: every CmdSN before its own is in). Untagged
// and reserved values count as SIMPLE (ACA is refused: begin_scsi).
bool IscsiConnection::may_start(const Task& t) const {
  if (t.attribute == kHeadOfQueue) return true;
  const bool ordered = t.attribute == kOrdered;
  if (!ordered && session_->ordered_in_set == 0) return true;
  if (ordered && !t.immediate &&
      static_cast<int32_t>(t.cmd_sn - window_.exp_cmd_sn()) >= 0)
    return false;
  for (const IscsiConnection* c : session_->connections)
    for (const Task& o : c->live_) {
      if (&o == &t || !o.in_set || o.lun != t.lun || !older(o, t)) continue;
      if (ordered || o.attribute == kOrdered) return false;
    }
  return true;
}

void IscsiConnection::unhold(Task& t) {
  if (!t.held) return;
  t.held = false;
  --session_->held;
}

// Given back: the tasks held behind it may start.
void IscsiConnection::leave_set(Task& t) {
  unhold(t);
  if (!t.in_set) return;
  t.in_set = false;
  if (t.attribute == kOrdered) --session_->ordered_in_set;
  if (session_->held) post_release();
}

// Later on the core, not inside the give-back that made room (starting a
// command can answer it, and give back others, at once).
void IscsiConnection::post_release() {
  if (session_->release_posted) return;
  session_->release_posted = true;
  route_.post(route_.home, [session = session_] { release_held(*session); });
}

// The held tasks that may start now, oldest first.
void IscsiConnection::release_held(SessionShared& session) {
  session.release_posted = false;
  if (session.held == 0) return;
  std::vector<Task*> held;
  for (IscsiConnection* c : session.connections)
    for (Task& t : c->live_)
      if (t.held) held.push_back(&t);
  std::sort(held.begin(), held.end(), [](Task* a, Task* b) { return older(*a, *b); });
  for (Task* t : held) {
    if (!t->held || !t->connection->may_start(*t)) continue;  // (ended meanwhile)
    t->connection->unhold(*t);
    t->connection->proceed(*t);
  }
}

}  // namespace sve::iscsi

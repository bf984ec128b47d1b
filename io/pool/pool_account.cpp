#include "io/pool/pool_account.hpp"

#include <algorithm>
#include <cassert>
#include <stdexcept>

namespace sve {

PoolAccount::PoolAccount(std::string name, uint64_t capacity)
    : name_(std::move(name)), reserve_(capacity), limit_(capacity) {}

PoolAccount::PoolAccount(std::string name, PoolAccount& parent, uint64_t reserve,
                         uint64_t limit)
    : name_(std::move(name)), parent_(&parent), reserve_(reserve),
      limit_(std::max(reserve, limit)) {
  if (!parent.can_reserve(reserve))
    throw std::logic_error("pool account " + name_ + ": parent " + parent.name_ +
                           " cannot guarantee its reservation");
  parent.take(reserve);
}

PoolAccount::~PoolAccount() {
  assert(used_ == 0);
  if (parent_) parent_->release(reserve_);
}

PoolAccount& PoolAccount::root() {
  PoolAccount* a = this;
  while (a->parent_) a = a->parent_;
  return *a;
}

bool PoolAccount::can_reserve(uint64_t units) const { return check(units) == Verdict::ok; }

// Whether this account can take `units` more: within its limit, and any part
// beyond its reservation available from its ancestors.
PoolAccount::Verdict PoolAccount::check(uint64_t units) const {
  const PoolAccount* a = this;
  bool first = true;
  while (a && units > 0) {
    if (a->used_ + units > a->limit_) return first ? Verdict::own_limit : Verdict::shared;
    uint64_t above_before = a->used_ > a->reserve_ ? a->used_ - a->reserve_ : 0;
    uint64_t after = a->used_ + units;
    uint64_t above_after = after > a->reserve_ ? after - a->reserve_ : 0;
    units = above_after - above_before;  // what must be borrowed from the parent
    a = a->parent_;
    first = false;
  }
  return units == 0 || !a ? Verdict::ok : Verdict::shared;
}

void PoolAccount::take(uint64_t units) {
  PoolAccount* a = this;
  while (a && units > 0) {
    uint64_t above_before = a->used_ > a->reserve_ ? a->used_ - a->reserve_ : 0;
    a->used_ += units;
    a->stats_.high_water = std::max(a->stats_.high_water, a->used_);
    uint64_t above_after = a->used_ > a->reserve_ ? a->used_ - a->reserve_ : 0;
    units = above_after - above_before;
    a = a->parent_;
  }
}

void PoolAccount::give(uint64_t units) {
  PoolAccount* a = this;
  while (a && units > 0) {
    assert(a->used_ >= units);
    uint64_t above_before = a->used_ > a->reserve_ ? a->used_ - a->reserve_ : 0;
    a->used_ -= units;
    uint64_t above_after = a->used_ > a->reserve_ ? a->used_ - a->reserve_ : 0;
    units = above_before - above_after;  // borrowed units go back up
    a = a->parent_;
  }
}

bool PoolAccount::has_waiter_in(const PoolAccount* account) const {
  for (const PoolWaiter& w : waiters_)
    if (w.account == account) return true;
  return false;
}

uint64_t PoolAccount::waiting() const {
  const PoolAccount* a = this;
  while (a->parent_) a = a->parent_;
  return a->waiters_.size();
}

bool PoolAccount::try_acquire(uint64_t units) {
  PoolAccount& r = root();
  if (check(units) != Verdict::ok) return false;
  if (!r.waiters_.empty()) {
    if (r.has_waiter_in(this)) return false;  // keep this account's order
    // Shared units go to earlier waiters that are waiting for shared units.
    bool needs_shared = used_ + units > reserve_;
    if (needs_shared)
      for (const PoolWaiter& w : r.waiters_)
        if (w.account->check(w.need) == Verdict::shared) return false;
  }
  take(units);
  for (PoolAccount* a = this; a; a = a->parent_) ++a->stats_.grants;
  return true;
}

bool PoolAccount::acquire_or_wait(PoolWaiter& w) {
  assert(w.account == this);
  if (try_acquire(w.need)) return true;
  wait(w);
  return false;
}

void PoolAccount::wait(PoolWaiter& w) {
  assert(w.account == this);
  for (PoolAccount* a = this; a; a = a->parent_) ++a->stats_.waits;  // per facility too
  root().waiters_.push_back(w);
}

void PoolAccount::cancel(PoolWaiter& w) {
  if (!w.is_linked()) return;
  PoolAccount& r = root();
  r.waiters_.erase(r.waiters_.iterator_to(w));
  r.serve_waiters();  // a cancelled head may have held others back
}

void PoolAccount::release(uint64_t units) {
  give(units);
  root().serve_waiters();
}

// Serves the waiters in arrival order. Per account, order is kept: once an
// account's waiter cannot go, its later waiters wait too. Once a waiter
// needing shared units cannot go, no later waiter may take shared units
// (they would overtake it); waiters within their reservation still go.
// A grant's callback may queue or cancel waiters, so after each grant the
// walk starts again from the front; accounts found blocked in this pass are
// skipped at once, and a new pass runs only if units came back meanwhile.
void PoolAccount::serve_waiters() {
  assert(!parent_);
  if (serving_) {  // a grant callback released or cancelled: look again after it
    again_ = true;
    return;
  }
  serving_ = true;
  do {
    again_ = false;
    bool shared_blocked = false;
    uint64_t pass = ++pass_;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      PoolWaiter& w = *it;
      PoolAccount* a = w.account;
      if (a->blocked_pass_ == pass) {
        ++it;
        continue;
      }
      Verdict v = a->check(w.need);
      bool needs_shared = a->used_ + w.need > a->reserve_;
      if (v != Verdict::ok || (needs_shared && shared_blocked)) {
        if (v == Verdict::shared) shared_blocked = true;
        a->blocked_pass_ = pass;
        ++it;
        continue;
      }
      auto next = waiters_.erase(it);
      a->take(w.need);
      if (!w.on_grant()) {  // the physical allocation failed: it keeps its place
        a->give(w.need);
        waiters_.insert(next, w);
        shared_blocked = true;
        a->blocked_pass_ = pass;
        it = waiters_.begin();
        continue;
      }
      for (PoolAccount* p = a; p; p = p->parent_) ++p->stats_.grants;
      it = waiters_.begin();
    }
  } while (again_);
  serving_ = false;
}

}  // namespace sve

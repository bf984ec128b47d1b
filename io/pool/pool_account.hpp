#pragma once
// Hierarchical accounting of a pool's units (request objects, buffer pages).
//
// Accounts form a tree: the root owns the pool's capacity; a child (a
// facility, then a volume or connection under it) is created with a
// guaranteed reservation, which it takes from its parent for good, and a
// limit. Units beyond its reservation are borrowed from the parent, which
// may borrow in turn, up to each account's limit.
//
// Waiting is first-come, first-served across the whole tree: one FIFO per
// tree, kept at the root. A waiter that only needs its own reservation is
// never held up by others; a waiter that needs shared units does not
// overtake an earlier waiter that needs shared units too, so a busy
// connection cannot starve a quiet one. A waiter held back only by its own
// account's limit does not hold up anybody else.
//
// Single-threaded: a tree belongs to one core's reactor.
#include <cstdint>
#include <string>

#include <boost/intrusive/list.hpp>

namespace sve {

class PoolAccount;

// Someone waiting for `need` units of `account`.
class PoolWaiter : public boost::intrusive::list_base_hook<> {
 public:
  virtual ~PoolWaiter() = default;
  // The units are accounted to the waiter's account. Returning false
  // refuses them (the physical allocation behind them failed, for example
  // the page allocator is fragmented): the grant is rolled back and the
  // waiter stays first in line.
  virtual bool on_grant() = 0;

  PoolAccount* account = nullptr;
  uint64_t need = 0;
};

// Grants and waits count those of the account's children too.
struct PoolAccountStats {
  uint64_t grants = 0;     // acquisitions, immediate or after waiting
  uint64_t waits = 0;      // acquisitions that had to wait
  uint64_t high_water = 0; // most units in use at once
};

class PoolAccount {
 public:
  // A root with `capacity` units.
  PoolAccount(std::string name, uint64_t capacity);
  // A child guaranteed `reserve` units (taken from `parent` now) and allowed
  // up to `limit`. Check can_reserve() first: a reservation the parent cannot
  // guarantee is a programming error.
  PoolAccount(std::string name, PoolAccount& parent, uint64_t reserve, uint64_t limit);
  // Returns the reservation. The account must be idle: nothing in use and
  // nobody waiting.
  ~PoolAccount();
  PoolAccount(const PoolAccount&) = delete;
  PoolAccount& operator=(const PoolAccount&) = delete;

  // Whether a child reserving `units` could be created now.
  bool can_reserve(uint64_t units) const;

  // Takes `w.need` units for `w.account` (which must be this account) if it
  // can without overtaking an earlier waiter; then returns true and does NOT
  // call on_grant. Otherwise queues the waiter and returns false; on_grant()
  // is called later, from a release().
  bool acquire_or_wait(PoolWaiter& w);
  // Queues the waiter without trying first: for a caller whose immediate
  // grant could not be used (see PoolWaiter::on_grant).
  void wait(PoolWaiter& w);
  // The non-waiting form: true if the units were taken.
  bool try_acquire(uint64_t units);
  // Gives units back and serves waiters that can now go.
  void release(uint64_t units);
  // Removes a waiter that no longer wants its units (its connection closed).
  void cancel(PoolWaiter& w);

  const std::string& name() const { return name_; }
  uint64_t used() const { return used_; }
  uint64_t reserve() const { return reserve_; }
  uint64_t limit() const { return limit_; }
  uint64_t waiting() const;  // waiters of the whole tree (asked of the root)
  const PoolAccountStats& stats() const { return stats_; }

 private:
  enum class Verdict { ok, own_limit, shared };
  PoolAccount& root();
  Verdict check(uint64_t units) const;
  void take(uint64_t units);
  void give(uint64_t units);
  bool has_waiter_in(const PoolAccount* account) const;
  void serve_waiters();

  std::string name_;
  PoolAccount* parent_ = nullptr;
  uint64_t reserve_ = 0;
  uint64_t limit_ = 0;
  uint64_t used_ = 0;  // units in use by this account and its children,
                       // children's reservations included
  PoolAccountStats stats_;
  // Root only: every waiter of the tree in arrival order.
  boost::intrusive::list<PoolWaiter> waiters_;
  bool serving_ = false;
  bool again_ = false;         // root: units came back while serving
  uint64_t pass_ = 0;          // root: numbers the passes of serve_waiters
  uint64_t blocked_pass_ = 0;  // the pass in which this account's line stopped
};

}  // namespace sve

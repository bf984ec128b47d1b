// The hierarchical pools: reservations, borrowing, limits, first-come
// first-served waiting across accounts, and the fixed-order rule that keeps
// two facilities from deadlocking on each other's memory.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "io/pool/object_pool.hpp"
#include "io/pool/pool_account.hpp"
#include "io/request_pool.hpp"

using namespace sve;

namespace {

// Records the order in which waiters were served.
struct Recorder final : PoolWaiter {
  Recorder(PoolAccount& a, uint64_t n, std::string tag, std::vector<std::string>& log)
      : tag(std::move(tag)), log(log) {
    account = &a;
    need = n;
  }
  bool on_grant() override {
    log.push_back(tag);
    return true;
  }
  std::string tag;
  std::vector<std::string>& log;
};

}  // namespace

TEST_CASE("a child's reservation is guaranteed and taken from its parent", "[pool]") {
  PoolAccount root("root", 10);
  PoolAccount a("a", root, 4, 10);
  CHECK(root.used() == 4);
  PoolAccount greedy("greedy", root, 0, 10);
  CHECK(greedy.try_acquire(6));  // everything not reserved
  CHECK_FALSE(greedy.try_acquire(1));
  // a still gets its four, although the root has nothing else left.
  CHECK(a.try_acquire(4));
  CHECK_FALSE(a.try_acquire(1));  // beyond its reservation there is nothing to borrow
  CHECK_FALSE(root.can_reserve(1));
  greedy.release(6);
  a.release(4);
  CHECK(root.used() == 4);
}

TEST_CASE("a child borrows beyond its reservation up to its limit", "[pool]") {
  PoolAccount root("root", 100);
  PoolAccount facility("facility", root, 10, 50);
  PoolAccount conn("conn", facility, 2, 20);
  CHECK(conn.try_acquire(2));   // its own reservation
  CHECK(facility.used() == 2);  // the connection's reservation, nothing more
  CHECK(root.used() == 10);     // the facility's reservation, nothing borrowed
  CHECK(conn.try_acquire(18));  // borrowed from the facility, which borrows from root
  CHECK(facility.used() == 20);
  CHECK(root.used() == 20);     // 10 reserved + 10 the facility borrowed
  CHECK_FALSE(conn.try_acquire(1));  // its limit
  conn.release(20);
  CHECK(conn.used() == 0);
  CHECK(facility.used() == 2);  // the connection's reservation stays with it
  CHECK(root.used() == 10);
}

TEST_CASE("waiters are served first come, first served across accounts", "[pool]") {
  PoolAccount root("root", 4);
  // Limits above the root's capacity: what they wait for is shared.
  PoolAccount busy("busy", root, 0, 8);
  PoolAccount quiet("quiet", root, 0, 8);
  std::vector<std::string> log;
  REQUIRE(busy.try_acquire(4));
  Recorder b1(busy, 2, "busy-1", log), q1(quiet, 1, "quiet-1", log), b2(busy, 1, "busy-2", log);
  CHECK_FALSE(busy.acquire_or_wait(b1));
  CHECK_FALSE(quiet.acquire_or_wait(q1));
  CHECK_FALSE(busy.acquire_or_wait(b2));
  // A newcomer cannot jump the line, even for one unit.
  busy.release(1);
  CHECK(log.empty());  // busy-1 needs two; nobody may overtake it
  CHECK_FALSE(quiet.try_acquire(1));
  busy.release(1);
  CHECK(log == std::vector<std::string>{"busy-1"});
  busy.release(2);
  CHECK(log == std::vector<std::string>{"busy-1", "quiet-1", "busy-2"});
  busy.release(3);
  quiet.release(1);
  CHECK(root.used() == 0);
  CHECK(root.waiting() == 0);
}

TEST_CASE("a waiter within its reservation is not held up by others", "[pool]") {
  PoolAccount root("root", 6);
  PoolAccount reserved("reserved", root, 2, 6);
  PoolAccount other("other", root, 0, 6);
  std::vector<std::string> log;
  REQUIRE(other.try_acquire(4));
  REQUIRE(reserved.try_acquire(2));
  Recorder big(other, 3, "other-big", log);
  CHECK_FALSE(other.acquire_or_wait(big));
  Recorder mine(reserved, 1, "reserved", log);
  CHECK_FALSE(reserved.acquire_or_wait(mine));  // its reservation is in use
  reserved.release(1);  // one reserved unit comes back: it is the reserved's
  CHECK(log == std::vector<std::string>{"reserved"});
  other.release(4);
  CHECK(log == std::vector<std::string>{"reserved", "other-big"});
  other.release(3);
  reserved.release(2);
}

TEST_CASE("a waiter held back by its own limit does not block others", "[pool]") {
  PoolAccount root("root", 10);
  PoolAccount capped("capped", root, 0, 2);
  PoolAccount other("other", root, 0, 10);
  std::vector<std::string> log;
  REQUIRE(capped.try_acquire(2));
  Recorder c(capped, 1, "capped", log);
  CHECK_FALSE(capped.acquire_or_wait(c));
  CHECK(other.try_acquire(5));  // the root has plenty; capped waits on itself
  capped.release(1);
  CHECK(log == std::vector<std::string>{"capped"});
  capped.release(2);
  other.release(5);
}

TEST_CASE("a cancelled waiter gives up its place", "[pool]") {
  PoolAccount root("root", 2);
  PoolAccount a("a", root, 0, 4), b("b", root, 0, 4);
  std::vector<std::string> log;
  REQUIRE(a.try_acquire(2));
  Recorder first(a, 2, "a", log), second(b, 1, "b", log);
  CHECK_FALSE(a.acquire_or_wait(first));
  CHECK_FALSE(b.acquire_or_wait(second));
  a.release(1);
  CHECK(log.empty());
  a.cancel(first);  // its connection closed
  CHECK(log == std::vector<std::string>{"b"});
  a.release(1);
  b.release(1);
}

TEST_CASE("objects come from the pool's array and go back to it", "[pool]") {
  RequestPool pool("requests", 3);
  PoolAccount acct("conn", pool.root(), 0, 3);
  REQUIRE(acct.try_acquire(3));
  IoRequestPtr r1 = pool.make(acct), r2 = pool.make(acct), r3 = pool.make(acct);
  CHECK(pool.owns(r1.get()));
  CHECK(pool.free_count() == 0);
  r1->offset = 4096;
  r1->parent = r2;
  IoRequest* first = r1.get();
  r1.reset();  // back to the pool, cleaned, and its unit back to the account
  CHECK(pool.free_count() == 1);
  CHECK(acct.used() == 2);
  CHECK(r2->use_count() == 1);  // the parent reference went too
  REQUIRE(acct.try_acquire(1));
  IoRequestPtr again = pool.make(acct);
  CHECK(again.get() == first);
  CHECK(again->offset == 0);
  CHECK(again->parent == nullptr);
}

// Two facilities each need two kinds of object: the front end holds a
// request context and then waits for buffer pages; virtualization then needs
// contexts for its pieces. The rule (docs/io-memory.md): objects are taken in
// one fixed order (front-end context, pages, piece contexts) and the last
// taker, whose work completes without waiting, has a reservation. With it,
// every interleaving finishes; without it, the front end can hold every
// context while it waits for pieces that can never come.
namespace {

bool run_two_facilities(uint64_t seed, bool reserve_for_lower) {
  PoolAccount contexts("contexts", 6);
  uint64_t reserve = reserve_for_lower ? 2 : 0;
  PoolAccount upper("upper", contexts, 0, 6 - reserve);
  PoolAccount lower("lower", contexts, reserve, 6);
  PoolAccount pages("pages", 4);
  PoolAccount upper_pages("upper-pages", pages, 0, 4);
  struct Job {
    int stage = 0;  // 0: wants a context, 1: pages, 2: piece contexts, 3: done
    uint64_t page_need = 1, piece_need = 1;
  };
  std::vector<Job> jobs(12);
  uint64_t x = seed;
  auto next = [&] { return x = x * 6364136223846793005ull + 1442695040888963407ull; };
  for (auto& j : jobs) {
    j.page_need = 1 + (next() >> 33) % 2;
    j.piece_need = 1 + (next() >> 40) % 2;
  }
  // Steps in a seeded random order; a job gives back what it holds only
  // when it finishes, as a real request does.
  for (int idle = 0; idle < 1000;) {
    Job& j = jobs[(next() >> 20) % jobs.size()];
    bool moved = false;
    if (j.stage == 0 && upper.try_acquire(1)) j.stage = 1, moved = true;
    else if (j.stage == 1 && upper_pages.try_acquire(j.page_need)) j.stage = 2, moved = true;
    else if (j.stage == 2 && lower.try_acquire(j.piece_need)) {
      lower.release(j.piece_need);  // the pieces complete without waiting
      upper_pages.release(j.page_need);
      upper.release(1);
      j.stage = 3;
      moved = true;
    }
    idle = moved ? 0 : idle + 1;
  }
  bool all_done = true;
  for (auto& j : jobs) {
    if (j.stage != 3) all_done = false;
    if (j.stage == 1 || j.stage == 2) upper.release(1);  // what a stuck job holds
    if (j.stage == 2) upper_pages.release(j.page_need);
  }
  return all_done;
}

}  // namespace

TEST_CASE("two consumers needing two kinds of object cannot deadlock", "[pool]") {
  int stuck_without_reserve = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    INFO("seed " << seed);
    REQUIRE(run_two_facilities(seed, true));
    if (!run_two_facilities(seed, false)) ++stuck_without_reserve;
  }
  // The reservation is what makes it safe: without it some orders deadlock.
  CHECK(stuck_without_reserve > 0);
}

// Per account, order is kept: a request of an account with a waiter goes
// behind it, even when what it asks for is within the account's own
// reservation (the waiter would otherwise starve behind a stream of them).
TEST_CASE("a request does not overtake an earlier waiter of its own account", "[pool]") {
  PoolAccount root("root", 4);
  PoolAccount a("a", root, 2, 4);
  PoolAccount b("b", root, 0, 4);
  std::vector<std::string> log;
  REQUIRE(a.try_acquire(2));  // its reservation
  REQUIRE(b.try_acquire(2));  // every shared unit
  Recorder w(a, 2, "a-waiter", log);
  CHECK_FALSE(a.acquire_or_wait(w));  // needs shared units
  a.release(1);
  CHECK(log.empty());
  CHECK_FALSE(a.try_acquire(1));  // within its reservation, but behind its waiter
  b.release(2);
  CHECK(log == std::vector<std::string>{"a-waiter"});
  a.release(3);
  CHECK(root.used() == 2);  // a's reservation
  CHECK(root.waiting() == 0);
}

// Shared units that come back go to the earliest waiter for shared units,
// not to a newcomer of another account that has no waiter yet.
TEST_CASE("a newcomer does not take shared units an earlier waiter waits for", "[pool]") {
  PoolAccount root("root", 4);
  PoolAccount busy("busy", root, 0, 8);
  PoolAccount late("late", root, 0, 8);
  std::vector<std::string> log;
  REQUIRE(busy.try_acquire(4));
  Recorder w(busy, 2, "busy-waiter", log);
  CHECK_FALSE(busy.acquire_or_wait(w));
  busy.release(1);
  CHECK_FALSE(late.try_acquire(1));  // one unit is free, but it is busy-waiter's turn
  busy.release(1);
  CHECK(log == std::vector<std::string>{"busy-waiter"});
  busy.release(4);
  CHECK(root.used() == 0);
}

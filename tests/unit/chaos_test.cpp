// The chaos monkey's seeded schedule and the fault tables it sets: a seed
// always gives the same faults (a failing run replays), a monkey resumed in
// a restarted process goes on where it was, and the faults act only on
// their target and only for their time.
#include <catch2/catch.hpp>

#include <set>

#include "node/chaos/chaos_plan.hpp"
#include "faults/net_faults.hpp"
#include "faults/mdisk_faults.hpp"

using namespace sve;

namespace {

std::vector<PlannedFault> first(ChaosPlan plan, int n) {
  std::vector<PlannedFault> out;
  for (int i = 0; i < n; ++i) out.push_back(plan.next());
  return out;
}

bool same(const PlannedFault& a, const PlannedFault& b) {
  return a.number == b.number && a.kind == b.kind && a.gap_ms == b.gap_ms &&
         a.duration_ms == b.duration_ms && a.target == b.target && a.intensity == b.intensity;
}

}  // namespace

TEST_CASE("a seed gives the same faults, a resumed plan goes on where it was", "[chaos]") {
  ChaosSettings s{42, all_fault_kinds(), 30};
  auto a = first(ChaosPlan(s), 200);
  auto b = first(ChaosPlan(s), 200);
  for (size_t i = 0; i < a.size(); ++i) CHECK(same(a[i], b[i]));
  ChaosPlan resumed(s);
  resumed.skip(57);
  CHECK(same(resumed.next(), a[57]));
  auto other = first(ChaosPlan({43, all_fault_kinds(), 30}), 200);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += !same(a[i], other[i]);
  CHECK(differ > 150);
  // Every kind comes up; gaps follow the rate (mean 2 s at 30 a minute).
  std::set<FaultKind> seen;
  uint64_t gaps = 0;
  for (const auto& f : a) {
    seen.insert(f.kind);
    gaps += f.gap_ms;
    CHECK(f.gap_ms >= 200);
    CHECK(f.gap_ms <= 20000);
    CHECK(f.duration_ms >= 500);
    CHECK(f.duration_ms <= 3000);
  }
  CHECK(seen.size() == all_fault_kinds().size());
  CHECK(gaps / a.size() > 1500);
  CHECK(gaps / a.size() < 2500);
}

TEST_CASE("only the asked kinds, unknown kinds are named", "[chaos]") {
  std::string error;
  auto kinds = parse_fault_kinds("partition,mdisk-stall,partition", error);
  REQUIRE(kinds);
  CHECK(kinds->size() == 2);
  for (const auto& f : first(ChaosPlan({7, *kinds, 60}), 100))
    CHECK((f.kind == FaultKind::partition || f.kind == FaultKind::mdisk_stall));
  CHECK(parse_fault_kinds("all", error)->size() == all_fault_kinds().size());
  CHECK_FALSE(parse_fault_kinds("partition,meteor", error));
  CHECK(error.find("'meteor'") != std::string::npos);
  CHECK(kills_process(FaultKind::hang_io));
  CHECK_FALSE(kills_process(FaultKind::partition));
}

TEST_CASE("network faults act on their peer, for their time", "[chaos]") {
  NetFaults net;
  CHECK_FALSE(net.outgoing(2, 1000).drop);
  net.set(2, {100, 0, 0, false, 2000});
  CHECK(net.outgoing(2, 1000).drop);
  CHECK_FALSE(net.outgoing(3, 1000).drop);
  CHECK_FALSE(net.outgoing(2, 2000).drop);  // over
  net.set(3, {0, 0, 0, true, 5000});
  CHECK(net.drop_incoming(3, 1000));
  CHECK(net.outgoing(3, 1000).drop);
  CHECK_FALSE(net.drop_incoming(2, 1000));
  net.set(4, {0, 0, 250, false, 5000});
  CHECK(net.outgoing(4, 1000).delay_ms == 250);
  int dropped = 0;
  net.set(5, {30, 0, 0, false, 5000});
  for (int i = 0; i < 1000; ++i) dropped += net.outgoing(5, 1000).drop;
  CHECK(dropped > 200);
  CHECK(dropped < 400);
  net.clear();
  CHECK_FALSE(net.drop_incoming(3, 1000));
}

TEST_CASE("mdisk faults act on their mdisk, for their time", "[chaos]") {
  MdiskFaults faults;
  CHECK(faults.check(1, 10).kind == MdiskFaults::Kind::none);
  faults.set(1, MdiskFaults::Kind::stall, 100);
  CHECK(faults.check(1, 10).kind == MdiskFaults::Kind::stall);
  CHECK(faults.check(1, 10).until_ms == 100);
  CHECK(faults.check(2, 10).kind == MdiskFaults::Kind::none);
  CHECK(faults.check(1, 100).kind == MdiskFaults::Kind::none);
  faults.set(2, MdiskFaults::Kind::error, 100);
  CHECK(faults.check(2, 50).kind == MdiskFaults::Kind::error);
  faults.clear();
  CHECK(faults.check(2, 50).kind == MdiskFaults::Kind::none);
}

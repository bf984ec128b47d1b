// Who executes each vdisk's requests and how it is cached, by the committed
// group state and the generation's members (model/ownership.hpp); which
// non-volatile copies still count; which state change a node must commit.
#include <catch2/catch.hpp>

#include "model/ownership.hpp"
#include "model/model.hpp"

using namespace sve;

namespace {

ClusterModel model() {
  ClusterModel c;
  IoGroupConfig g;
  g.id = 10;
  g.name = "g";
  g.nodes = {1, 2};
  g.cache_epoch = g.wb_epoch = 20;
  c.iogrps.push_back(g);
  for (uint32_t id : {1u, 2u}) {
    VdiskConfig v;
    v.id = id;  // vdisk 1 prefers node 1, vdisk 2 node 2
    v.name = "v" + std::to_string(id);
    v.iogrp_id = 10;
    v.preferred_node = id;
    c.vdisks.push_back(v);
  }
  VdiskConfig loose;
  loose.id = 3;
  loose.name = "loose";
  c.vdisks.push_back(loose);
  return c;
}

std::shared_ptr<const RouteTable> routes(const ClusterModel& c, uint32_t self,
                                         std::vector<uint32_t> members) {
  RoutePolicy p;
  p.self = self;
  p.members = std::move(members);
  return build_routes(c, p);
}

}  // namespace

TEST_CASE("both nodes up: each vdisk is written back on its preferred node", "[ownership]") {
  ClusterModel c = model();
  for (uint32_t self : {1u, 2u, 3u}) {
    auto t = routes(c, self, {1, 2, 3});
    const VdiskRoute* v1 = t->find(1);
    REQUIRE(v1);
    CHECK(v1->owner == 1);
    CHECK(v1->partner == 2);
    CHECK(v1->mode == CacheMode::write_back);
    CHECK(t->find(2)->owner == 2);
    CHECK(t->local(1) == (self == 1));
    CHECK(t->local(3));  // in no group: every node, uncached
    CHECK(t->find(3)->mode == CacheMode::off);
  }
}

TEST_CASE("a lost node's vdisks wait until the survivor commits it runs them alone",
          "[ownership]") {
  ClusterModel c = model();
  auto t = routes(c, 2, {2, 3});
  CHECK(t->find(1)->owner == 2);
  CHECK(t->find(1)->hold);
  CHECK_FALSE(t->local(1));  // not yet
  CHECK_FALSE(t->offline(1));
  auto due = due_transitions(c, RoutePolicy{2, 0, true, {2, 3}, true}, {});
  REQUIRE(due.size() == 1);
  CHECK(due[0].solo == 2);
  CHECK(due[0].from_epoch == 20);
  // Committed: node 2 runs both vdisks, writing through.
  c.iogrps[0].solo = 2;
  c.iogrps[0].cache_epoch = 21;
  t = routes(c, 2, {2, 3});
  CHECK(t->local(1));
  CHECK(t->local(2));
  CHECK(t->find(1)->mode == CacheMode::write_through);
  // Node 1 back: node 2 keeps both until it has destaged everything.
  t = routes(c, 1, {1, 2, 3});
  CHECK(t->find(1)->owner == 2);
  CHECK_FALSE(t->local(1));
  CHECK(due_transitions(c, RoutePolicy{2, 0, true, {1, 2, 3}, true}, {}).empty());
  due = due_transitions(c, RoutePolicy{2, 0, true, {1, 2, 3}, true}, {10});
  REQUIRE(due.size() == 1);
  CHECK(due[0].solo == 0);
  // The solo node gone too: the group is offline, whoever else is up.
  t = routes(c, 1, {1, 3});
  CHECK(t->offline(1));
  CHECK(t->offline(2));
}

TEST_CASE("which non-volatile copies count", "[ownership]") {
  VdiskRoute r;
  r.group = 10;
  r.epoch = 21;
  r.wb_epoch = 21;
  CHECK(copy_counts(r, 1, 21));  // both write back: the current epoch only
  CHECK_FALSE(copy_counts(r, 1, 20));
  r.solo = 2;
  r.epoch = 22;
  CHECK(copy_counts(r, 2, 21));  // the solo node: the write-back epoch that ended
  CHECK_FALSE(copy_counts(r, 2, 22));
  CHECK_FALSE(copy_counts(r, 1, 21));  // the other one: nothing
  r.handover_from = 1;
  CHECK(copy_counts(r, 1, 5));  // the old owner of a moved vdisk: everything
}

TEST_CASE("a moved vdisk waits for its old owner to hand it over", "[ownership]") {
  ClusterModel c = model();
  c.vdisks[0].preferred_node = 2;
  c.vdisks[0].handover_from = 1;
  auto t = routes(c, 2, {1, 2});
  CHECK(t->find(1)->owner == 2);
  CHECK(t->find(1)->hold);
  CHECK_FALSE(t->local(1));
  auto old = routes(c, 1, {1, 2});
  CHECK_FALSE(old->local(1));
  CHECK(copy_counts(*old->find(1), 1, 20));
}

TEST_CASE("a standalone node owns everything and writes through", "[ownership]") {
  ClusterModel c = model();
  auto t = routes(c, 0, {});
  for (uint32_t v : {1u, 2u, 3u}) {
    CHECK(t->local(v));
    CHECK(t->find(v)->mode == CacheMode::write_through);
  }
  RoutePolicy none;
  none.serving = false;
  none.self = 1;
  auto off = build_routes(c, none);
  CHECK_FALSE(off->serving);
  CHECK(off->vdisks.empty());
}

TEST_CASE("a vdisk moved to another group: the old group's other node hands it over while "
          "the old owner is out",
          "[ownership]") {
  ClusterModel c = model();
  IoGroupConfig g2;
  g2.id = 11;
  g2.name = "g2";
  g2.nodes = {3, 4};
  g2.cache_epoch = g2.wb_epoch = 30;
  c.iogrps.push_back(g2);
  VdiskConfig& v = c.vdisks[0];  // was owned by node 1 of group 10, node 2 its mirror
  v.iogrp_id = 11;
  v.preferred_node = 3;
  v.handover_from = 1;
  v.handover_group = 10;
  v.handover_partner = 2;
  auto all = routes(c, 3, {1, 2, 3, 4});
  CHECK(all->find(1)->owner == 3);
  CHECK(all->find(1)->hold);
  CHECK(all->find(1)->handover_by == 1);
  CHECK(copy_counts(*all->find(1), 2, 7));  // node 2's copies count until it is over
  auto no_old_owner = routes(c, 3, {2, 3, 4});
  CHECK(no_old_owner->find(1)->hold);
  CHECK(no_old_owner->find(1)->handover_by == 2);
  auto neither = routes(c, 3, {3, 4});
  CHECK(neither->find(1)->hold);
  // The new group running alone changes nothing: the copies are elsewhere.
  c.iogrps[1].solo = 3;
  auto solo = routes(c, 3, {2, 3});
  CHECK(solo->find(1)->hold);
  CHECK(solo->find(1)->handover_by == 2);
  // Nor does its return to write-back clear a handover from another group.
  CHECK(apply_transition(c, {11, c.iogrps[1].cache_epoch, 0}));
  CHECK(c.vdisks[0].handover_from == 1);
  CHECK(finish_handover(c, 1, 1));
  CHECK(c.vdisks[0].handover_partner == 0);
  CHECK_FALSE(copy_counts(*routes(c, 3, {2, 3})->find(1), 2, 7));
}

TEST_CASE("a node that lost its cache memory owns nothing in that epoch", "[ownership]") {
  ClusterModel c = model();  // vdisk 1 prefers node 1, in epoch 20
  RoutePolicy p;
  p.self = 1;
  p.members = {1, 2};
  p.untrusted_epoch = 20;
  auto t = build_routes(c, p);
  CHECK(t->find(1)->owner == 1);
  CHECK(t->find(1)->hold);  // its copies of epoch 20 are gone
  CHECK_FALSE(t->local(1));
  // Its partner takes the group over with the copies it holds ...
  auto due = due_transitions(c, p, {});
  REQUIRE(due.size() == 1);
  CHECK(due[0].solo == 2);
  // ... or, if the partner is out, nobody does: never this node alone.
  p.members = {1};
  CHECK(due_transitions(c, p, {10}).empty());
  // A later epoch is trusted again.
  p.members = {1, 2};
  REQUIRE(apply_transition(c, due[0]));
  REQUIRE(apply_transition(c, {10, c.iogrps[0].cache_epoch, 0}));
  auto later = build_routes(c, p);
  CHECK(later->local(1) == false);  // handed back by node 2 first (see below)
  CHECK(later->find(1)->handover_from == 2);
}

TEST_CASE("back to writing back: the solo node hands the other's vdisks back", "[ownership]") {
  ClusterModel c = model();
  REQUIRE(apply_transition(c, {10, 20, 2}));  // node 2 runs the group alone
  REQUIRE(apply_transition(c, {10, c.iogrps[0].cache_epoch, 0}));
  // Vdisk 1 goes back to node 1, which waits until node 2 has applied this
  // and says it let go; vdisk 2 stays with node 2.
  CHECK(c.vdisks[0].handover_from == 2);
  CHECK(c.vdisks[1].handover_from == 0);
  RoutePolicy p;
  p.self = 1;
  p.members = {1, 2};
  auto t = build_routes(c, p);
  CHECK(t->find(1)->hold);
  CHECK(t->find(1)->handover_by == 2);
  REQUIRE(finish_handover(c, 1, 2));
  CHECK(build_routes(c, p)->local(1));
}

TEST_CASE("a point-in-time copy writes its source through until it starts, and never caches "
          "its target while it copies", "[ownership]") {
  ClusterModel c = model();
  VdiskConfig t;
  t.id = 4;
  t.name = "t";
  t.iogrp_id = 10;
  t.preferred_node = 1;
  c.vdisks.push_back(t);
  FcMapConfig f;
  f.id = 9;
  f.name = "m";
  f.source = 1;
  f.target = 4;
  c.fcmaps.push_back(f);
  auto modes = [&](FcState state) {
    c.fcmaps[0].state = state;
    auto r = routes(c, 1, {1, 2});
    // The partner stays named: it holds copies of what is not destaged yet.
    CHECK(r->find(1)->partner == 2);
    return std::make_pair(r->find(1)->mode, r->find(4)->mode);
  };
  using M = CacheMode;
  CHECK(modes(FcState::idle_or_copied) == std::make_pair(M::write_back, M::write_back));
  CHECK(modes(FcState::preparing) == std::make_pair(M::write_through, M::write_through));
  CHECK(modes(FcState::prepared) == std::make_pair(M::write_through, M::off));
  CHECK(modes(FcState::starting) == std::make_pair(M::write_through, M::off));
  CHECK(modes(FcState::copying) == std::make_pair(M::write_back, M::off));
  CHECK(modes(FcState::stopped) == std::make_pair(M::write_back, M::off));
  CHECK(modes(FcState::suspended) == std::make_pair(M::write_back, M::off));
}

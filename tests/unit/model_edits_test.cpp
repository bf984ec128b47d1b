// The admin commands' changes to the model, as pure functions: no JSON, no
// devices, no actors (model/edits.hpp).
#include <catch2/catch.hpp>

#include <cerrno>

#include "model/edits.hpp"
#include "model/fc_edits.hpp"
#include "model/virt_map.hpp"
#include "model/extent_allocator.hpp"

using namespace sve;

namespace {

const MdiskOnline kAllOnline = [](uint32_t) { return true; };

// Two mdisks of 8 extents of 1 MiB in pool "p"; nodes 1..4 in groups
// "a" {1,2} and "b" {3,4}.
ClusterModel base() {
  ClusterModel m;
  REQUIRE(add_mdisk(m, "m1", "/d/1", "u1", 8 << 20));
  REQUIRE(add_mdisk(m, "m2", "/d/2", "u2", 8 << 20));
  REQUIRE(create_pool(m, "p", 1 << 20, {"m1", "m2"}, kAllOnline));
  REQUIRE(create_iogrp(m, "a", {2, 1}, {1, 2, 3, 4}));
  REQUIRE(create_iogrp(m, "b", {3, 4}, {1, 2, 3, 4}));
  return m;
}

NewVdisk vdisk(std::string name, uint64_t bytes, std::string group = "a") {
  NewVdisk v;
  v.name = std::move(name);
  v.pool = "p";
  v.size_bytes = bytes;
  v.placement.iogrp = std::move(group);
  return v;
}

// A change that moves a mapping into group `g` (empty: out of its group).
FcMapChange in_group(std::string g) {
  FcMapChange change;
  change.group = std::move(g);
  return change;
}

}  // namespace

TEST_CASE("mdisks: names and uuids are unique, a pool's mdisk stays", "[edits]") {
  ClusterModel m = base();
  CHECK_FALSE(add_mdisk(m, "m1", "/d/9", "u9", 1 << 20));
  CHECK_FALSE(add_mdisk(m, "m9", "/d/9", "u1", 1 << 20));
  auto removed = remove_mdisk(m, "m1");
  REQUIRE_FALSE(removed);
  CHECK(removed.error().message == "mdisk 'm1' is used by pool 'p'");
  REQUIRE(add_mdisk(m, "m3", "/d/3", "u3", 1 << 20));
  REQUIRE(remove_mdisk(m, "m3"));
  CHECK_FALSE(m.find_mdisk("m3"));
  // Back at a new path under its own name; under another name it is refused.
  CHECK(reattach_mdisk(m, "m2", "u2", "/e/2").value() == m.find_mdisk("m2")->id);
  CHECK(m.find_mdisk("m2")->path == "/e/2");
  CHECK_FALSE(reattach_mdisk(m, "other", "u2", "/e/2"));
  CHECK(reattach_mdisk(m, "m2", "unknown", "/e/2").value() == 0);
}

TEST_CASE("pools: extent size, mdisks online, in one pool only", "[edits]") {
  ClusterModel m = base();
  REQUIRE(add_mdisk(m, "m3", "/d/3", "u3", 8 << 20));
  CHECK_FALSE(create_pool(m, "q", 3 << 20, {"m3"}, kAllOnline));   // not a power of two
  CHECK_FALSE(create_pool(m, "q", 512 << 10, {"m3"}, kAllOnline)); // below 1M
  CHECK_FALSE(create_pool(m, "q", 1 << 20, {}, kAllOnline));
  CHECK_FALSE(create_pool(m, "q", 1 << 20, {"m1"}, kAllOnline));   // in pool p
  CHECK_FALSE(create_pool(m, "q", 1 << 20, {"m3", "m3"}, kAllOnline));
  CHECK_FALSE(create_pool(m, "q", 16 << 20, {"m3"}, kAllOnline));  // smaller than an extent
  CHECK_FALSE(create_pool(m, "q", 1 << 20, {"m3"}, [](uint32_t) { return false; }));
  CHECK_FALSE(create_pool(m, "p", 1 << 20, {"m3"}, kAllOnline));
  ClusterModel before = m;
  REQUIRE(create_pool(m, "q", 1 << 20, {"m3"}, kAllOnline));
  CHECK(m.pools.size() == before.pools.size() + 1);
  CHECK(m.next_id == before.next_id + 1);
}

TEST_CASE("vdisks: extents from the pool, ENOSPC when it is short", "[edits]") {
  ClusterModel m = base();
  auto v = create_vdisk(m, vdisk("v", 3 << 20), kAllOnline);
  REQUIRE(v);
  CHECK(v->extents.size() == 3);
  CHECK(v->iogrp_id == m.find_iogrp("a")->id);
  CHECK(v->formatted);
  PoolUsage usage(m, *m.find_pool("p"));
  CHECK(usage.free_extents() == 13);
  auto big = create_vdisk(m, vdisk("big", 14 << 20), kAllOnline);
  REQUIRE_FALSE(big);
  CHECK(big.error().code == ENOSPC);
  CHECK_FALSE(create_vdisk(m, vdisk("v", 1 << 20), kAllOnline));      // exists
  CHECK_FALSE(create_vdisk(m, vdisk("w", 1000), kAllOnline));         // not 512-aligned
  CHECK_FALSE(create_vdisk(m, vdisk("w", 1 << 20, "zz"), kAllOnline)); // no such group
  NewVdisk anywhere = vdisk("w", 1 << 20);
  anywhere.placement.iogrp.reset();
  CHECK_FALSE(create_vdisk(m, anywhere, kAllOnline));  // two groups: say which
  CHECK_FALSE(create_vdisk(m, vdisk("w", 1 << 20), [](uint32_t) { return false; }));
  REQUIRE(delete_pool(m, "p").error().message == "pool 'p' is used by vdisk 'v'");
  REQUIRE(delete_vdisk(m, "v"));
  REQUIRE(delete_pool(m, "p"));
}

TEST_CASE("pools: addmdisk gives a full pool room again, and refuses what cannot join",
          "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("v", 16 << 20), kAllOnline));  // every extent of p
  auto full = create_vdisk(m, vdisk("w", 1 << 20), kAllOnline);
  REQUIRE_FALSE(full);
  CHECK(full.error().code == ENOSPC);
  REQUIRE(add_mdisk(m, "m3", "/d/3", "u3", 4 << 20));
  REQUIRE(add_mdisk(m, "m4", "/d/4", "u4", 512 << 10));
  CHECK_FALSE(add_pool_mdisks(m, "nope", {"m3"}, kAllOnline));
  CHECK_FALSE(add_pool_mdisks(m, "p", {}, kAllOnline));
  CHECK_FALSE(add_pool_mdisks(m, "p", {"m1"}, kAllOnline));        // in p already
  CHECK_FALSE(add_pool_mdisks(m, "p", {"m3", "m3"}, kAllOnline));  // named twice
  CHECK_FALSE(add_pool_mdisks(m, "p", {"m4"}, kAllOnline));        // smaller than an extent
  CHECK_FALSE(add_pool_mdisks(m, "p", {"zz"}, kAllOnline));
  CHECK_FALSE(add_pool_mdisks(m, "p", {"m3"}, [](uint32_t) { return false; }));  // offline
  ClusterModel before = m;
  auto grown = add_pool_mdisks(m, "p", {"m3"}, kAllOnline);
  REQUIRE(grown);
  CHECK(grown->mdisks.size() == before.find_pool("p")->mdisks.size() + 1);
  CHECK(PoolUsage(m, *m.find_pool("p")).free_extents() == 4);
  auto w = create_vdisk(m, vdisk("w", 4 << 20), kAllOnline);
  REQUIRE(w);
  for (const auto& e : w->extents) CHECK(e.mdisk_id == m.find_mdisk("m3")->id);
}

TEST_CASE("vdisks: read-only is a property hosts see, set and cleared", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("v", 1 << 20), kAllOnline));
  CHECK_FALSE(m.find_vdisk("v")->read_only);
  CHECK_FALSE(set_read_only(m, "nope", true));
  REQUIRE(set_read_only(m, "v", true));
  CHECK(build_virt_map(m)->find("v")->read_only);
  REQUIRE(set_read_only(m, "v", false));
  CHECK_FALSE(build_virt_map(m)->find("v")->read_only);
}

TEST_CASE("vdisks: the preferred node balances the group, or is named", "[edits]") {
  ClusterModel m = base();
  auto v1 = create_vdisk(m, vdisk("v1", 1 << 20), kAllOnline);
  auto v2 = create_vdisk(m, vdisk("v2", 1 << 20), kAllOnline);
  REQUIRE(v1);
  REQUIRE(v2);
  CHECK(v1->preferred_node == 1);
  CHECK(v2->preferred_node == 2);
  NewVdisk named = vdisk("v3", 1 << 20);
  named.placement.node = 2;
  CHECK(create_vdisk(m, named, kAllOnline)->preferred_node == 2);
  named.name = "v4";
  named.placement.node = 3;  // not in group a
  CHECK_FALSE(create_vdisk(m, named, kAllOnline));
}

TEST_CASE("expand: extents first in a cluster, the size after", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("v", 2 << 20), kAllOnline));
  CHECK_FALSE(expand_vdisk(m, "v", 1 << 20, false));  // no shrinking
  auto e = expand_vdisk(m, "v", 4 << 20, true);
  REQUIRE(e);
  CHECK(e->added.size() == 2);
  CHECK(m.find_vdisk("v")->size_bytes == 2 << 20);  // not grown yet
  CHECK(m.find_vdisk("v")->extents.size() == 4);
  uint32_t id = m.find_vdisk("v")->id;
  CHECK(grow_to_extents(m, "v", id + 100, 4 << 20).error().code == ESTALE);
  CHECK(grow_to_extents(m, "v", id, 5 << 20).error().code == ESTALE);  // no extents for it
  REQUIRE(grow_to_extents(m, "v", id, 4 << 20));
  CHECK(m.find_vdisk("v")->size_bytes == 4 << 20);
  auto alone = expand_vdisk(m, "v", 5 << 20, false);
  REQUIRE(alone);
  CHECK(alone->vdisk.size_bytes == 5 << 20);
  CHECK(expand_vdisk(m, "v", 64 << 20, false).error().code == ENOSPC);
}

TEST_CASE("move: a new owner starts a handover from the old one", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("v", 1 << 20), kAllOnline));  // prefers node 1
  Placement same;
  same.node = 1;
  auto stay = move_vdisk(m, "v", same);
  REQUIRE(stay);
  CHECK(stay->handover_from == 0);  // same owner: nothing to hand over
  Placement to2;
  to2.node = 2;
  auto within = move_vdisk(m, "v", to2);
  REQUIRE(within);
  CHECK(within->preferred_node == 2);
  CHECK(within->handover_from == 1);
  CHECK(within->handover_group == 0);
  // Refused until the handover is finished.
  CHECK_FALSE(move_vdisk(m, "v", same));
  m.find_vdisk("v")->handover_from = 0;
  Placement to_b;
  to_b.iogrp = "b";
  auto cross = move_vdisk(m, "v", to_b);
  REQUIRE(cross);
  CHECK(cross->iogrp_id == m.find_iogrp("b")->id);
  CHECK(cross->handover_from == 2);
  CHECK(cross->handover_group == m.find_iogrp("a")->id);
  CHECK(cross->handover_partner == 1);  // writing back on both: 1 holds copies
  CHECK_FALSE(move_vdisk(m, "v", Placement{}));
  CHECK_FALSE(move_vdisk(m, "nope", to_b));
}

TEST_CASE("move: a group run by one node hands over from that node, no partner", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("v", 1 << 20), kAllOnline));  // prefers node 1
  for (auto& g : m.iogrps)
    if (g.name == "a") g.solo = 2;
  Placement to_b;
  to_b.iogrp = "b";
  auto cross = move_vdisk(m, "v", to_b);
  REQUIRE(cross);
  CHECK(cross->handover_from == 2);
  CHECK(cross->handover_partner == 0);
}

TEST_CASE("I/O groups: two configured nodes, each in one group", "[edits]") {
  ClusterModel m = base();
  CHECK_FALSE(create_iogrp(m, "c", {5, 6}, {1, 2, 3, 4, 5}));  // 6 not configured
  CHECK_FALSE(create_iogrp(m, "c", {5, 5}, {5}));
  CHECK_FALSE(create_iogrp(m, "c", {1, 5}, {1, 5}));  // 1 is in a
  CHECK_FALSE(create_iogrp(m, "c", {5}, {5}));
  CHECK_FALSE(create_iogrp(m, "a", {5, 6}, {5, 6}));
  auto c = create_iogrp(m, "c", {6, 5}, {5, 6});
  REQUIRE(c);
  CHECK(c->nodes == std::vector<uint32_t>{5, 6});
  CHECK(c->cache_epoch == c->id + 1);
  REQUIRE(create_vdisk(m, vdisk("v", 1 << 20, "c"), kAllOnline));
  CHECK_FALSE(delete_iogrp(m, "c"));
  REQUIRE(delete_vdisk(m, "v"));
  REQUIRE(delete_iogrp(m, "c"));
  CHECK_FALSE(delete_iogrp(m, "c"));
}

TEST_CASE("thin vdisks: over-allocated, real capacity from rsize, grown from the pool", "[edits]") {
  ClusterModel m = base();  // 16 extents of 1 MiB
  NewVdisk t = vdisk("t", 1ull << 40);  // 1 TiB on a 16 MiB pool
  CHECK_FALSE(create_vdisk(m, t, kAllOnline));  // fully allocated: no
  t.grain_bytes = 256 * 1024;
  t.rsize_bytes = 2 << 20;
  // 1 TiB of 256 KiB grains: a map of 4128 pages, 33 MiB of slots: more
  // than the pool, so the minimum is refused with ENOSPC.
  auto big = create_vdisk(m, t, kAllOnline);
  REQUIRE_FALSE(big);
  CHECK(big.error().code == ENOSPC);
  t.size_bytes = 64ull << 30;  // 64 GiB: 258 pages, 2 MiB + one grain
  auto made = create_vdisk(m, t, kAllOnline);
  REQUIRE(made);
  CHECK(made.value().thin());
  CHECK(made.value().extents.size() == thin_min_extents(t.size_bytes, t.grain_bytes, 1 << 20));
  CHECK(made.value().extents.size() == 3);
  CHECK(made.value().autoexpand);
  CHECK(made.value().warning_pct == 80);
  auto map = build_virt_map(m);
  const VolumeLayout* layout = map->find("t");
  REQUIRE(layout);
  CHECK(layout->thin());
  CHECK(layout->addressable_bytes() == 3ull << 20);

  NewVdisk bad_grain = vdisk("g", 1 << 20);
  bad_grain.grain_bytes = 48 * 1024;
  CHECK_FALSE(create_vdisk(m, bad_grain, kAllOnline));
  NewVdisk thick_rsize = vdisk("r", 1 << 20);
  thick_rsize.rsize_pct = 10;
  CHECK_FALSE(create_vdisk(m, thick_rsize, kAllOnline));
  // The virtual size of a thin vdisk stays (its map is sized by it).
  CHECK_FALSE(expand_vdisk(m, "t", 128ull << 30, false));

  uint32_t id = made.value().id;
  auto grown = grow_thin(m, "t", id, 1, 4);
  REQUIRE(grown);
  CHECK(grown.value().added.size() == 4);
  CHECK(m.find_vdisk("t")->extents.size() == 7);
  // What is left (9 extents) is given even when more is wanted.
  auto rest = grow_thin(m, "t", id, 1, 50);
  REQUIRE(rest);
  CHECK(rest.value().added.size() == 9);
  auto none = grow_thin(m, "t", id, 1, 1);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == ENOSPC);
  CHECK_FALSE(grow_thin(m, "t", id + 1, 1, 1));  // another vdisk's id: stale
  // More capacity in the pool: it grows again.
  REQUIRE(add_mdisk(m, "m3", "/d/3", "u3", 8 << 20));
  REQUIRE(add_pool_mdisks(m, "p", {"m3"}, kAllOnline));
  CHECK(grow_thin(m, "t", id, 1, 2));
  CHECK(set_thin(m, "t", 50, false));
  CHECK(m.find_vdisk("t")->warning_pct == 50);
  CHECK_FALSE(m.find_vdisk("t")->autoexpand);
  CHECK_FALSE(set_thin(m, "t", 101, std::nullopt));
}

TEST_CASE("point-in-time copy mappings: limits, states and what they lock", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("s", 2 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("t", 2 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("u", 2 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("small", 1 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("far", 2 << 20, "b"), kAllOnline));
  auto map = [&](std::string s, std::string t, uint32_t grain = 256 * 1024) {
    NewFcMap f;
    f.source = std::move(s);
    f.target = std::move(t);
    f.grain_bytes = grain;
    return create_fcmap(m, f, kAllOnline);
  };
  CHECK_FALSE(map("s", "small"));  // sizes differ
  CHECK_FALSE(map("s", "s"));
  CHECK_FALSE(map("s", "far"));    // another I/O group
  CHECK_FALSE(map("s", "t", 128 * 1024));
  auto f = map("s", "t");
  REQUIRE(f);
  CHECK(f.value().name == "fcmap" + std::to_string(f.value().id));
  // Its bitmap: a hidden vdisk beside the source, gone with the mapping.
  uint32_t bitmap = f.value().bitmap;
  const VdiskConfig* b = static_cast<const ClusterModel&>(m).find_vdisk(bitmap);
  REQUIRE(b);
  CHECK(b->bitmap_of == f.value().id);
  CHECK(b->pool_id == m.find_vdisk("s")->pool_id);
  CHECK(b->size_bytes >= 2 * 4096);
  CHECK_FALSE(map("u", "t"));      // t is a target already
  REQUIRE(map("s", "u"));          // a second target of s
  std::string name = f.value().name;
  uint32_t id = f.value().id;

  // The targets moved to the source's preferred node (one node executes a
  // mapping), handed over as by vdisk move; prepared once that is done.
  for (const char* target : {"t", "u"})
    CHECK(m.find_vdisk(target)->preferred_node == m.find_vdisk("s")->preferred_node);
  bool moved = m.find_vdisk("t")->handover_from || m.find_vdisk("u")->handover_from;
  if (moved) CHECK_FALSE(prepare_fcmap(m, name));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  CHECK_FALSE(delete_vdisk(m, "s"));
  CHECK_FALSE(start_fcmap(m, name));  // not prepared
  REQUIRE(prepare_fcmap(m, name));
  CHECK(fcmap_blocks_change(m, m.find_vdisk("t")->id).find(name) != std::string::npos);
  CHECK_FALSE(move_vdisk(m, "t", Placement{std::string("a"), 1}));
  CHECK_FALSE(expand_vdisk(m, "s", 4 << 20, false));
  REQUIRE(fcmap_prepared(m, id));
  auto st = start_fcmap(m, name);
  REQUIRE(st);
  CHECK(st.value().state == FcState::starting);
  uint64_t seq = st.value().start_seq;
  CHECK_FALSE(fcmap_started(m, id, seq + 1, 1).value());  // another start's
  CHECK(fcmap_started(m, id, seq, 1).value());
  CHECK(m.find_fcmap(name)->state == FcState::copying);
  CHECK(m.find_fcmap(name)->started_by == 1);
  CHECK_FALSE(delete_fcmap(m, name, false));  // copying: --force
  REQUIRE(stop_fcmap(m, name));
  CHECK(m.find_fcmap(name)->state == FcState::stopped);
  CHECK_FALSE(fcmap_copied(m, id, seq).value());  // stopped meanwhile
  // Started again: copied, then deleted by autodelete.
  REQUIRE(prepare_fcmap(m, name));
  REQUIRE(fcmap_prepared(m, id));
  REQUIRE(start_fcmap(m, name));
  seq = m.find_fcmap(name)->start_seq;
  REQUIRE(fcmap_started(m, id, seq, 1).value());
  CHECK(suspend_fcmap(m, id, seq, "lost").value());
  CHECK(m.find_fcmap(name)->state == FcState::suspended);
  REQUIRE(prepare_fcmap(m, name));
  REQUIRE(fcmap_prepared(m, id));
  REQUIRE(start_fcmap(m, name));
  seq = m.find_fcmap(name)->start_seq;
  REQUIRE(fcmap_started(m, id, seq, 1).value());
  REQUIRE(set_fcmap(m, name, {100, true, std::nullopt, std::nullopt}));
  CHECK(fcmap_copied(m, id, seq).value());
  CHECK(m.find_fcmap(name) == nullptr);
  CHECK(static_cast<const ClusterModel&>(m).find_vdisk(bitmap) == nullptr);

  CHECK(copy_rate_bytes(0) == 0);
  CHECK(copy_rate_bytes(1) == 128 * 1024);
  CHECK(copy_rate_bytes(50) == 2 << 20);
  CHECK(copy_rate_bytes(51) == 4 << 20);
  CHECK(copy_rate_bytes(100) == 64 << 20);
  CHECK(copy_rate_bytes(150) == 2ull << 30);
}

TEST_CASE("consistency groups: their mappings prepare, start and stop together", "[edits]") {
  ClusterModel m = base();
  for (const char* v : {"a", "b", "c", "d", "e", "f"})
    REQUIRE(create_vdisk(m, vdisk(v, 2 << 20), kAllOnline));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  auto map = [&](std::string s, std::string t, std::string group, bool incremental = false) {
    NewFcMap f;
    f.source = std::move(s);
    f.target = std::move(t);
    f.group = std::move(group);
    f.incremental = incremental;
    return create_fcmap(m, f, kAllOnline);
  };
  CHECK_FALSE(map("a", "b", "g"));  // no such group
  auto g = create_fcgroup(m, "g");
  REQUIRE(g);
  CHECK_FALSE(create_fcgroup(m, "g"));  // exists
  auto unnamed = create_fcgroup(m, "");
  REQUIRE(unnamed);
  CHECK(unnamed.value().name == "fccstgrp" + std::to_string(unnamed.value().id));
  CHECK(fcgroup_state(m, g.value().id) == "empty");
  CHECK_FALSE(prepare_fcgroup(m, "g"));  // no mappings
  auto m1 = map("a", "b", "g", true);
  auto m2 = map("c", "d", "g");
  REQUIRE(m1);
  REQUIRE(m2);
  CHECK(m1.value().incremental);
  CHECK(m1.value().group == g.value().id);
  auto m3 = map("e", "f", "");
  REQUIRE(m3);
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  uint32_t id1 = m1.value().id, id2 = m2.value().id;
  // Its mappings move only with it.
  CHECK_FALSE(prepare_fcmap(m, m1.value().name));
  CHECK_FALSE(start_fcgroup(m, "g"));  // not prepared
  REQUIRE(prepare_fcgroup(m, "g"));
  CHECK(fcgroup_state(m, g.value().id) == "preparing");
  REQUIRE(fcmap_prepared(m, id1));
  CHECK(fcgroup_state(m, g.value().id) == "preparing");
  CHECK_FALSE(start_fcgroup(m, "g"));  // one is still preparing: all or none
  CHECK(m.find_fcmap(m1.value().name)->state == FcState::prepared);
  REQUIRE(fcmap_prepared(m, id2));
  CHECK(fcgroup_state(m, g.value().id) == "prepared");
  CHECK_FALSE(stop_fcmap(m, m2.value().name));
  REQUIRE(start_fcgroup(m, "g"));
  uint64_t seq1 = m.find_fcmap(m1.value().name)->start_seq;
  uint64_t seq2 = m.find_fcmap(m2.value().name)->start_seq;
  // The first drained: it waits, still starting, for the other.
  CHECK(fcmap_started(m, id1, seq1, 1).value());
  CHECK(m.find_fcmap(m1.value().name)->state == FcState::starting);
  CHECK(m.find_fcmap(m1.value().name)->drained);
  CHECK_FALSE(fcmap_started(m, id1, seq1, 1).value());  // nothing new
  CHECK(fcgroup_state(m, g.value().id) == "starting");
  // The last: all of them copying, in this one change.
  CHECK(fcmap_started(m, id2, seq2, 2).value());
  for (uint32_t id : {id1, id2}) {
    const FcMapConfig* f = nullptr;
    for (const auto& x : m.fcmaps)
      if (x.id == id) f = &x;
    REQUIRE(f);
    CHECK(f->state == FcState::copying);
    CHECK_FALSE(f->drained);
  }
  CHECK(fcgroup_state(m, g.value().id) == "copying");
  // No joining an active group; no leaving one either.
  CHECK_FALSE(set_fcmap(m, m3.value().name, in_group("g")));
  CHECK_FALSE(set_fcmap(m, m1.value().name, in_group("")));
  // One copied: the group still copies until the other is.
  REQUIRE(fcmap_copied(m, id1, seq1).value());
  CHECK(fcgroup_state(m, g.value().id) == "copying");
  REQUIRE(stop_fcgroup(m, "g"));
  CHECK(fcgroup_state(m, g.value().id) == "stopped");
  CHECK(m.find_fcmap(m1.value().name)->state == FcState::idle_or_copied);
  // A stop while starting undoes the drained marks.
  REQUIRE(prepare_fcgroup(m, "g"));
  REQUIRE(fcmap_prepared(m, id1));
  REQUIRE(fcmap_prepared(m, id2));
  REQUIRE(start_fcgroup(m, "g"));
  REQUIRE(fcmap_started(m, id1, m.find_fcmap(m1.value().name)->start_seq, 1).value());
  REQUIRE(stop_fcgroup(m, "g"));
  CHECK_FALSE(m.find_fcmap(m1.value().name)->drained);
  CHECK(fcgroup_state(m, g.value().id) == "idle_or_copied");
  // Leaving and joining when idle.
  REQUIRE(set_fcmap(m, m2.value().name, in_group("")));
  CHECK(m.find_fcmap(m2.value().name)->group == 0);
  REQUIRE(set_fcmap(m, m2.value().name, in_group("g")));
  CHECK_FALSE(delete_fcgroup(m, "g", false));  // it has mappings
  REQUIRE(delete_fcgroup(m, "g", true));
  CHECK(m.find_fcgroup("g") == nullptr);
  CHECK(m.find_fcmap(m1.value().name)->group == 0);
  REQUIRE(prepare_fcmap(m, m1.value().name));  // standalone again
}

TEST_CASE("a mapping whose bitmap finds no room in the pool is refused", "[edits]") {
  ClusterModel m = base();
  REQUIRE(create_vdisk(m, vdisk("x", 8 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("y", 8 << 20), kAllOnline));  // every extent taken
  NewFcMap f;
  f.source = "x";
  f.target = "y";
  auto made = create_fcmap(m, f, kAllOnline);
  REQUIRE_FALSE(made);
  CHECK(made.error().code == ENOSPC);
  CHECK(made.error().message.find("bitmap") != std::string::npos);
  // Offline mdisks are not written to.
  REQUIRE(delete_vdisk(m, "x"));
  REQUIRE(delete_vdisk(m, "y"));
  REQUIRE(create_vdisk(m, vdisk("y", 7 << 20), kAllOnline));
  REQUIRE(create_vdisk(m, vdisk("x2", 7 << 20), kAllOnline));
  f.target = "x2";
  f.source = "y";
  CHECK_FALSE(create_fcmap(m, f, [](uint32_t) { return false; }));
  REQUIRE(create_fcmap(m, f, kAllOnline));
}

TEST_CASE("cascades and restores: one home, an online source, stops that clean first",
          "[edits]") {
  ClusterModel m = base();
  for (const char* v : {"a", "b", "c", "d", "x", "y"})
    REQUIRE(create_vdisk(m, vdisk(v, 1 << 20), kAllOnline));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  auto map = [&](std::string s, std::string t) {
    NewFcMap f;
    f.source = std::move(s);
    f.target = std::move(t);
    f.name = f.source + f.target;
    return create_fcmap(m, f, kAllOnline);
  };
  REQUIRE(map("a", "b"));
  REQUIRE(map("b", "a"));  // a restore
  REQUIRE(map("b", "c"));  // a cascade
  REQUIRE(map("b", "d"));
  REQUIRE(map("x", "y"));
  REQUIRE(map("y", "c").error().code == EINVAL);  // c is the target of one mapping already
  REQUIRE(map("c", "x"));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  auto id = [&](const std::string& name) { return m.find_fcmap(name)->id; };
  auto start = [&](const std::string& name) {
    auto prepared = prepare_fcmap(m, name);
    INFO(name << ": " << (prepared ? "" : prepared.error().message));
    REQUIRE(prepared);
    REQUIRE(fcmap_prepared(m, id(name)));
    REQUIRE(start_fcmap(m, name));
    const FcMapConfig* f = m.find_fcmap(name);
    REQUIRE(fcmap_started(m, f->id, f->start_seq, 1).value());
  };
  uint32_t a = m.find_vdisk("a")->id;
  start("ab");
  CHECK(m.find_fcmap("ab")->home == a);
  // A restore and a cascade from b while ab copies: they take its home,
  // and start later (they read through it).
  REQUIRE(prepare_fcmap(m, "ba"));
  CHECK(m.find_fcmap("ba")->home == a);
  // ab cannot stop while a mapping from its target is on its way to start.
  auto refused = stop_fcmap(m, "ab");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == EBUSY);
  CHECK(refused.error().message.find("'ba'") != std::string::npos);
  REQUIRE(fcmap_prepared(m, id("ba")));
  REQUIRE(start_fcmap(m, "ba"));
  REQUIRE(fcmap_started(m, id("ba"), m.find_fcmap("ba")->start_seq, 1).value());
  start("bc");
  CHECK(m.find_fcmap("bc")->home == a);
  CHECK(m.find_fcmap("ab")->order < m.find_fcmap("ba")->order);
  CHECK(m.find_fcmap("ba")->order < m.find_fcmap("bc")->order);
  // xy copies on its own home; cx would join two homes: refused.
  start("xy");
  CHECK(m.find_fcmap("xy")->home == m.find_vdisk("x")->id);
  refused = prepare_fcmap(m, "cx");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("executed apart") != std::string::npos);
  // ab stops by way of stopping: ba and bc read through its target. It is
  // not deleted meanwhile, even with --force.
  REQUIRE(stop_fcmap(m, "ab"));
  CHECK(m.find_fcmap("ab")->state == FcState::stopping);
  CHECK_FALSE(delete_fcmap(m, "ab", true));
  // Its target is offline from now: no new mapping starts from it.
  refused = prepare_fcmap(m, "bd");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("offline") != std::string::npos);
  CHECK_FALSE(fcmap_cleaned(m, id("ab"), 99).value());  // another start's
  REQUIRE(fcmap_cleaned(m, id("ab"), m.find_fcmap("ab")->start_seq).value());
  CHECK(m.find_fcmap("ab")->state == FcState::stopped);
  // A mapping with nothing reading through it stops at once.
  REQUIRE(stop_fcmap(m, "bc"));
  CHECK(m.find_fcmap("bc")->state == FcState::stopped);
  // A suspended mapping takes those that read through it along.
  REQUIRE(delete_fcmap(m, "bc", false));
  start("ab");  // again: a is ba's target, so ab now reads through ba
  start("bd");  // and bd through ab
  start("cx");  // (c is its own again; x's home is its own)
  REQUIRE(suspend_fcmap(m, id("ba"), m.find_fcmap("ba")->start_seq, "lost").value());
  CHECK(m.find_fcmap("ab")->state == FcState::suspended);
  CHECK(m.find_fcmap("ab")->why.find("'ba'") != std::string::npos);
  CHECK(m.find_fcmap("bd")->state == FcState::suspended);
  CHECK(m.find_fcmap("bd")->why.find("'ab'") != std::string::npos);
  CHECK(m.find_fcmap("xy")->state == FcState::copying);
  // stop --force: at once, no cleaning; those that read through its target
  // (and theirs) stop with it. Not those it reads through, nor others.
  for (const char* name : {"ba", "ab", "bd"}) REQUIRE(delete_fcmap(m, name, false));
  REQUIRE(map("a", "b"));
  REQUIRE(map("b", "d"));
  REQUIRE(map("d", "a"));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  start("ab");
  start("bd");  // reads through ab
  start("da");  // reads through bd
  REQUIRE(stop_fcmap(m, "ab"));
  CHECK(m.find_fcmap("ab")->state == FcState::stopping);
  auto forced = stop_fcmap(m, "ab", true);
  REQUIRE(forced);
  CHECK(forced.value().state == FcState::stopped);
  CHECK(m.find_fcmap("bd")->state == FcState::stopped);
  CHECK(m.find_fcmap("bd")->why.find("'ab'") != std::string::npos);
  CHECK(m.find_fcmap("da")->state == FcState::stopped);
  CHECK(m.find_fcmap("da")->why.find("'bd'") != std::string::npos);
  CHECK(m.find_fcmap("cx")->state == FcState::copying);
  CHECK(m.find_fcmap("xy")->state == FcState::copying);
  // A forced stop of a mapping nothing reads through is a plain stop.
  REQUIRE(stop_fcmap(m, "cx", true));
  CHECK(m.find_fcmap("cx")->state == FcState::stopped);
  CHECK(m.find_fcmap("xy")->state == FcState::copying);
}

TEST_CASE("a consistency group's cascade is prepared onto one home", "[edits]") {
  ClusterModel m = base();
  for (const char* v : {"a", "b", "c"}) REQUIRE(create_vdisk(m, vdisk(v, 1 << 20), kAllOnline));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  REQUIRE(create_fcgroup(m, "g"));
  for (auto [s, t] : {std::pair{"a", "b"}, std::pair{"b", "c"}}) {
    NewFcMap f;
    f.source = s;
    f.target = t;
    f.name = std::string(s) + t;
    f.group = "g";
    REQUIRE(create_fcmap(m, f, kAllOnline));
  }
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  REQUIRE(prepare_fcgroup(m, "g"));
  CHECK(m.find_fcmap("ab")->home == m.find_vdisk("a")->id);
  CHECK(m.find_fcmap("bc")->home == m.find_vdisk("a")->id);
}

TEST_CASE("cascades and restores: a restore loses the history of an incremental mapping",
          "[edits]") {
  ClusterModel m = base();
  for (const char* v : {"a", "b"}) REQUIRE(create_vdisk(m, vdisk(v, 1 << 20), kAllOnline));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  NewFcMap f;
  f.source = "a";
  f.target = "b";
  f.name = "ab";
  f.incremental = true;
  REQUIRE(create_fcmap(m, f, kAllOnline));
  f.source = "b";
  f.target = "a";
  f.name = "ba";
  f.incremental = false;
  REQUIRE(create_fcmap(m, f, kAllOnline));
  for (auto& v : m.vdisks) v.handover_from = v.handover_group = v.handover_partner = 0;
  auto run = [&](const std::string& name) {
    REQUIRE(prepare_fcmap(m, name));
    uint32_t id = m.find_fcmap(name)->id;
    REQUIRE(fcmap_prepared(m, id));
    REQUIRE(start_fcmap(m, name));
    REQUIRE(fcmap_started(m, id, m.find_fcmap(name)->start_seq, 1).value());
    REQUIRE(fcmap_copied(m, id, m.find_fcmap(name)->start_seq).value());
  };
  run("ab");
  CHECK_FALSE(m.find_fcmap("ab")->history_lost);
  // The restore writes ab's source: what ab's history says equal is not.
  run("ba");
  CHECK(m.find_fcmap("ab")->history_lost);
  // Until ab's next start is committed (that start copies every grain).
  REQUIRE(prepare_fcmap(m, "ab"));
  CHECK(m.find_fcmap("ab")->history_lost);
  uint32_t id = m.find_fcmap("ab")->id;
  REQUIRE(fcmap_prepared(m, id));
  REQUIRE(start_fcmap(m, "ab"));
  REQUIRE(fcmap_started(m, id, m.find_fcmap("ab")->start_seq, 1).value());
  CHECK_FALSE(m.find_fcmap("ab")->history_lost);
  // The restore starts while ab copies (its prepare leaves ab alone: ab
  // executes), and ab ends while the restore goes on: the writes into its
  // source of that time are noted nowhere, so its history is lost.
  uint32_t ba = m.find_fcmap("ba")->id;
  REQUIRE(prepare_fcmap(m, "ba"));
  REQUIRE(fcmap_prepared(m, ba));
  REQUIRE(start_fcmap(m, "ba"));
  REQUIRE(fcmap_started(m, ba, m.find_fcmap("ba")->start_seq, 1).value());
  CHECK_FALSE(m.find_fcmap("ab")->history_lost);
  REQUIRE(fcmap_copied(m, id, m.find_fcmap("ab")->start_seq).value());
  CHECK(m.find_fcmap("ab")->history_lost);
}

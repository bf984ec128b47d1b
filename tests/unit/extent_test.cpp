#include <catch2/catch.hpp>

#include <map>

#include "hw/device/mdisk_label.hpp"
#include "util/size.hpp"
#include "model/extent_allocator.hpp"
#include "model/virt_map.hpp"

using namespace sve;

namespace {

// Three mdisks of 4, 4 and 2 extents of 16 MiB in one pool.
ClusterModel three_mdisk_pool() {
  ClusterModel c;
  c.config_uuid = "test";
  c.mdisks = {{1, "a", "/a", "ua", 4 * 16 * MiB},
              {2, "b", "/b", "ub", 4 * 16 * MiB + 5},
              {3, "c", "/c", "uc", 2 * 16 * MiB}};
  c.pools = {{10, "p", 16 * MiB, {1, 2, 3}, 0}};
  return c;
}

}  // namespace

TEST_CASE("a striped allocation takes extents round-robin across mdisks") {
  ClusterModel c = three_mdisk_pool();
  PoolUsage usage(c, c.pools[0]);
  CHECK(usage.total_extents() == 10);
  uint32_t cursor = 0;
  auto got = usage.allocate(7, ExtentPolicy::striped, cursor);
  REQUIRE(got);
  std::vector<ExtentLoc> want = {{1, 0}, {2, 0}, {3, 0}, {1, 1}, {2, 1}, {3, 1}, {1, 2}};
  CHECK(got.value() == want);
  CHECK(cursor == 1);  // the next striped vdisk starts on mdisk b
  // mdisk c is now full: the stripe skips it.
  auto more = usage.allocate(3, ExtentPolicy::striped, cursor);
  REQUIRE(more);
  std::vector<ExtentLoc> want_more = {{2, 2}, {1, 3}, {2, 3}};
  CHECK(more.value() == want_more);
  CHECK(usage.free_extents() == 0);
}

TEST_CASE("a sequential allocation fills one mdisk first") {
  ClusterModel c = three_mdisk_pool();
  PoolUsage usage(c, c.pools[0]);
  uint32_t cursor = 0;
  auto got = usage.allocate(5, ExtentPolicy::sequential, cursor);
  REQUIRE(got);
  std::vector<ExtentLoc> want = {{1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 0}};
  CHECK(got.value() == want);
}

TEST_CASE("an allocation larger than the free space takes nothing") {
  ClusterModel c = three_mdisk_pool();
  c.vdisks = {{20, "v", 10, 3 * 16 * MiB, ExtentPolicy::striped, {{1, 0}, {2, 0}, {3, 0}}}};
  PoolUsage usage(c, c.pools[0]);
  CHECK(usage.free_extents() == 7);
  uint32_t cursor = 0;
  auto got = usage.allocate(8, ExtentPolicy::striped, cursor);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == ENOSPC);
  CHECK(usage.free_extents() == 7);
  CHECK(usage.free_extents_on(1) == 3);
}

TEST_CASE("a range is split at extent boundaries and joined where contiguous") {
  VolumeLayout v;
  v.size_bytes = 4 * MiB;
  v.extent_bytes = MiB;
  v.extents = {{1, 10 * MiB}, {2, 10 * MiB}, {2, 11 * MiB}, {1, 5 * MiB}};
  SECTION("inside one extent") {
    auto p = split_range(v, 4096, 8192);
    REQUIRE(p.size() == 1);
    CHECK(p[0].mdisk_id == 1);
    CHECK(p[0].mdisk_offset == 10 * MiB + 4096);
    CHECK(p[0].length == 8192);
    CHECK(p[0].request_offset == 0);
  }
  SECTION("across a boundary between mdisks") {
    auto p = split_range(v, MiB - 512, 1024);
    REQUIRE(p.size() == 2);
    CHECK(p[0].mdisk_id == 1);
    CHECK(p[0].length == 512);
    CHECK(p[1].mdisk_id == 2);
    CHECK(p[1].mdisk_offset == 10 * MiB);
    CHECK(p[1].request_offset == 512);
  }
  SECTION("physically adjacent extents merge into one piece") {
    auto p = split_range(v, MiB, 2 * MiB);
    REQUIRE(p.size() == 1);
    CHECK(p[0].length == 2 * MiB);
  }
  SECTION("the whole volume") {
    auto p = split_range(v, 0, 4 * MiB);
    REQUIRE(p.size() == 3);
    uint64_t total = 0;
    for (auto& piece : p) total += piece.length;
    CHECK(total == 4 * MiB);
    CHECK(p[2].mdisk_offset == 5 * MiB);
    CHECK(p[2].request_offset == 3 * MiB);
  }
}

TEST_CASE("the virt map places extents after the reserved label area") {
  ClusterModel c = three_mdisk_pool();
  c.vdisks = {{20, "v", 10, 2 * 16 * MiB, ExtentPolicy::striped, {{2, 3}, {1, 0}}}};
  auto map = build_virt_map(c);
  const VolumeLayout* v = map->find("v");
  REQUIRE(v);
  CHECK(v->extents[0].mdisk_id == 2);
  CHECK(v->extents[0].mdisk_offset == kMdiskReservedBytes + 3 * 16 * MiB);
  CHECK(v->extents[1].mdisk_offset == kMdiskReservedBytes);
  CHECK(v->mdisks.size() == 2);
}

// ALUA: which node's ports serve a vdisk how (model/host_paths.hpp), from
// the I/O group, the preferred node and the cluster view; and what SCSI
// says of it (io/scsi/scsi_alua.cpp): TPGS in INQUIRY, the port's
// designators in VPD 0x83, REPORT TARGET PORT GROUPS, and the commands a
// port that cannot serve the unit refuses.
#include <catch2/catch.hpp>

#include <vector>

#include "io/iscsi/iscsi_units.hpp"
#include "io/scsi/scsi_commands.hpp"
#include "model/host_paths.hpp"
#include "model/model.hpp"
#include "model/virt_map.hpp"
#include "scsi_test_cdb.hpp"

using namespace sve;
using sve::scsi::test::be;
using sve::scsi::test::Cdb;

namespace {

// Nodes 1 and 2 are I/O group 10; vdisk 1 prefers node 1, vdisk 2 node 2,
// vdisk 3 is in no group.
ClusterModel model() {
  ClusterModel c;
  IoGroupConfig g;
  g.id = 10;
  g.name = "g";
  g.nodes = {1, 2};
  c.iogrps.push_back(g);
  for (uint32_t id : {1u, 2u}) {
    VdiskConfig v;
    v.id = id;
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

std::vector<NodePath> paths_of(const ClusterModel& c, uint32_t self, std::vector<uint32_t> members,
                               uint32_t vdisk, bool serving = true) {
  RoutePolicy p;
  p.self = self;
  p.serving = serving;
  p.members = std::move(members);
  auto routes = build_routes(c, p);
  auto paths = build_host_paths(c, p, *routes);
  const auto* found = paths->find(vdisk);
  return found ? *found : std::vector<NodePath>{};
}

using S = PathState;

scsi::Plan run(const Cdb& c, const scsi::LogicalUnit& lu) { return scsi::plan(c.b.data(), 16, lu); }

scsi::LogicalUnit unit_on(uint16_t port_group, std::vector<scsi::PortGroup> groups) {
  scsi::LogicalUnit lu;
  lu.volume = 1;
  lu.blocks = 2048;
  lu.serial = "0123456789abcdef";
  lu.port_group = port_group;
  lu.port_groups = std::move(groups);
  return lu;
}

}  // namespace

TEST_CASE("ALUA: the preferred node is optimized, every other member forwards", "[alua]") {
  ClusterModel c = model();
  for (uint32_t self : {1u, 2u, 3u}) {
    // Every node of the generation tells the same.
    CHECK(paths_of(c, self, {1, 2, 3}, 1) ==
          std::vector<NodePath>{{1, S::optimized, true}, {2, S::non_optimized, false},
                                {3, S::non_optimized, false}});
    CHECK(paths_of(c, self, {1, 2, 3}, 2) ==
          std::vector<NodePath>{{1, S::non_optimized, false}, {2, S::optimized, true},
                                {3, S::non_optimized, false}});
    // In no group every node serves it itself.
    CHECK(paths_of(c, self, {1, 2, 3}, 3) ==
          std::vector<NodePath>{{1, S::optimized, false}, {2, S::optimized, false},
                                {3, S::optimized, false}});
  }
}

TEST_CASE("ALUA: the partner of a preferred node that is gone goes through transitioning",
          "[alua]") {
  ClusterModel c = model();
  // Node 1 is out: node 2 owns vdisk 1 but holds its requests until it has
  // committed that it runs the group alone.
  CHECK(paths_of(c, 2, {2, 3}, 1) ==
        std::vector<NodePath>{{1, S::unavailable, true}, {2, S::transitioning, false},
                              {3, S::non_optimized, false}});
  c.iogrps[0].solo = 2;
  CHECK(paths_of(c, 3, {2, 3}, 1) ==
        std::vector<NodePath>{{1, S::unavailable, true}, {2, S::optimized, false},
                              {3, S::non_optimized, false}});
  // Node 1 returns while node 2 still runs the group alone (the resync):
  // node 2 stays the owner until both write back again.
  CHECK(paths_of(c, 1, {1, 2, 3}, 1)[0] == NodePath{1, S::non_optimized, true});
  c.iogrps[0].solo = 0;
  CHECK(paths_of(c, 1, {1, 2, 3}, 1)[0] == NodePath{1, S::optimized, true});
}

TEST_CASE("ALUA: a node without a lease, and an offline group, serve nothing", "[alua]") {
  ClusterModel c = model();
  CHECK(paths_of(c, 1, {}, 1, false) == std::vector<NodePath>{{1, S::unavailable, true}});
  CHECK(paths_of(c, 3, {}, 3, false) == std::vector<NodePath>{{3, S::unavailable, false}});
  // Neither node of the group is in the cluster.
  CHECK(paths_of(c, 3, {3}, 1) ==
        std::vector<NodePath>{{1, S::unavailable, true}, {2, S::unavailable, false},
                              {3, S::unavailable, false}});
  // A standalone node says nothing: its units are its own, optimized.
  RoutePolicy standalone;
  auto paths = build_host_paths(c, standalone, *build_routes(c, standalone));
  CHECK(paths->find(1) == nullptr);
}

TEST_CASE("ALUA: a unit's port groups come from the paths, one group per node", "[alua]") {
  ClusterModel c = model();
  RoutePolicy p;
  p.self = 2;
  p.members = {1, 2, 3};
  auto paths = build_host_paths(c, p, *build_routes(c, p));
  VirtMap map;
  VolumeLayout v1;
  v1.id = 1;
  v1.name = "v1";
  v1.size_bytes = 1 << 20;
  map.volumes[1] = v1;
  auto units = iscsi::units_of(map, {{0, 1, false}}, paths.get());
  REQUIRE(units.size() == 1);
  const scsi::LogicalUnit& lu = units[0].lu;
  CHECK(lu.port_group == 2);
  CHECK(lu.access() == scsi::AccessState::non_optimized);
  CHECK(lu.port_groups ==
        std::vector<scsi::PortGroup>{{1, scsi::AccessState::optimized, true},
                                     {2, scsi::AccessState::non_optimized, false},
                                     {3, scsi::AccessState::non_optimized, false}});
  // Without paths (a standalone node): group 1, optimized.
  auto alone = iscsi::units_of(map, {{0, 1, false}});
  CHECK(alone[0].lu.port_group == 1);
  CHECK(alone[0].lu.access() == scsi::AccessState::optimized);
}

TEST_CASE("SCSI: INQUIRY says implicit ALUA, VPD 0x83 names the port and its group", "[alua]") {
  auto lu = unit_on(2, {{1, scsi::AccessState::optimized, true},
                        {2, scsi::AccessState::non_optimized, false}});
  scsi::Plan p = run(Cdb{0x12}.be(3, 96, 2), lu);
  REQUIRE(p.data_in.size() == 66);
  CHECK((p.data_in[5] & 0x30) == 0x10);  // TPGS 01b
  p = run(Cdb{0x12, 0x01, 0x83}.be(3, 255, 2), lu);
  bool relative = false, group = false;
  for (size_t at = 4; at + 4 <= p.data_in.size(); at += 4 + p.data_in[at + 3]) {
    const uint8_t association = p.data_in[at + 1] >> 4 & 0x03, type = p.data_in[at + 1] & 0x0f;
    if (association == 1 && type == 4) relative = be(p.data_in, at + 6, 2) == 2;
    if (association == 1 && type == 5) group = be(p.data_in, at + 6, 2) == 2;
  }
  CHECK(relative);
  CHECK(group);
}

TEST_CASE("SCSI: REPORT TARGET PORT GROUPS lists every group with its state", "[alua]") {
  auto lu = unit_on(2, {{1, scsi::AccessState::unavailable, true},
                        {2, scsi::AccessState::transitioning, false}});
  scsi::Plan p = run(Cdb{0xa3, 0x0a}.be(6, 1024, 4), lu);
  REQUIRE(p.status == scsi::Status::good);
  REQUIRE(p.data_in.size() == 4 + 2 * 12);
  CHECK(be(p.data_in, 0, 4) == 24);
  CHECK(p.data_in[4] == 0x83);  // PREF, unavailable
  CHECK(p.data_in[5] == 0x8b);  // T_SUP U_SUP AN_SUP AO_SUP
  CHECK(be(p.data_in, 6, 2) == 1);
  CHECK(p.data_in[11] == 1);    // one port,
  CHECK(be(p.data_in, 14, 2) == 1);  // relative port 1
  CHECK(p.data_in[16] == 0x0f);  // transitioning
  CHECK(be(p.data_in, 18, 2) == 2);
  // The extended header, and an answer cut to the allocation length.
  p = run(Cdb{0xa3, 0x2a}.be(6, 1024, 4), lu);
  REQUIRE(p.data_in.size() == 8 + 2 * 12);
  CHECK(be(p.data_in, 0, 4) == 28);
  CHECK(p.data_in[4] == 0x10);
  CHECK(p.data_in[8] == 0x83);
  CHECK(run(Cdb{0xa3, 0x0a}.be(6, 6, 4), lu).data_in.size() == 6);
  p = run(Cdb{0xa3, 0x4a}.be(6, 1024, 4), lu);  // format 010b: none such
  CHECK(p.status == scsi::Status::check_condition);
  CHECK(p.sense == scsi::sense::invalid_field_in_cdb);
  // A standalone unit: its own group alone, optimized and preferred.
  p = run(Cdb{0xa3, 0x0a}.be(6, 1024, 4), unit_on(1, {}));
  REQUIRE(p.data_in.size() == 16);
  CHECK(p.data_in[4] == 0x80);
}

TEST_CASE("SCSI: a port that cannot serve the unit refuses all but finding out", "[alua]") {
  const Cdb read{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  const Cdb tur{0x00};
  for (auto [state, why] : {std::pair{scsi::AccessState::unavailable, scsi::sense::port_unavailable},
                            std::pair{scsi::AccessState::transitioning,
                                      scsi::sense::port_transitioning}}) {
    auto lu = unit_on(1, {{1, state, true}, {2, scsi::AccessState::optimized, false}});
    for (const Cdb& c : {read, tur}) {
      scsi::Plan p = run(c, lu);
      CHECK(p.status == scsi::Status::check_condition);
      CHECK(p.sense == why);
      CHECK(!p.io);
    }
    CHECK(run(Cdb{0x12}.be(3, 96, 2), lu).status == scsi::Status::good);
    CHECK(run(Cdb{0xa3, 0x0a}.be(6, 1024, 4), lu).status == scsi::Status::good);
    CHECK(run(Cdb{0x03}.at(4, 18), lu).status == scsi::Status::good);
  }
  // Non-optimized serves (it forwards to the owner); a port that the
  // groups do not name serves nothing.
  auto forwards = unit_on(2, {{1, scsi::AccessState::optimized, true},
                              {2, scsi::AccessState::non_optimized, false}});
  CHECK(run(read, forwards).io);
  auto stranger = unit_on(3, {{1, scsi::AccessState::optimized, true}});
  CHECK(run(read, stranger).sense == scsi::sense::port_unavailable);
}

// Who may log in to the iSCSI target and which LUNs it sees
// (io/iscsi/iscsi_access.hpp): hosts by IQN, their addresses and CHAP
// secrets, their mappings as LUNs, and the loopback rule with no hosts.
#include <catch2/catch.hpp>

#include "io/iscsi/iscsi_access.hpp"

using namespace sve;
using namespace sve::iscsi;

namespace {

VirtMap map_with_hosts(bool hosts) {
  VirtMap m;
  for (uint32_t id : {1u, 2u, 3u}) {
    VolumeLayout v;
    v.id = id;
    v.name = "v" + std::to_string(id);
    v.hidden = id == 3;  // a mapping's bitmap: never a LUN
    m.volumes[id] = v;
  }
  if (!hosts) return m;
  HostAccess a;
  a.id = 1;
  a.name = "db1";
  a.iqn = "iqn.2026-12.org.example:db1";
  a.chap_secret = "db1-secret-123";
  a.luns = {{2, 0, true}, {1, 5, false}};
  HostAccess b;
  b.id = 2;
  b.name = "web";
  b.iqn = "iqn.2026-12.org.example:web";
  b.addresses = {"10.0.0.0/8"};
  b.luns = {{1, 0, false}};
  m.hosts = {a, b};
  return m;
}

}  // namespace

TEST_CASE("iSCSI access: hosts by IQN, their addresses, secrets and LUNs", "[iscsi]") {
  VirtMap m = map_with_hosts(true);
  auto a = resolve_iscsi_access(m, {"iqn.2026-12.org.example:db1", "192.0.2.7"}, false);
  CHECK(a.policy.allowed);
  CHECK(a.policy.chap_secret == "db1-secret-123");
  REQUIRE(a.luns.size() == 2);
  CHECK((a.luns[0].lun == 0 && a.luns[0].vdisk == 2 && a.luns[0].read_only));
  CHECK((a.luns[1].lun == 5 && a.luns[1].vdisk == 1 && !a.luns[1].read_only));

  a = resolve_iscsi_access(m, {"iqn.2026-12.org.example:web", "10.1.2.3"}, false);
  CHECK(a.policy.allowed);
  CHECK(a.policy.chap_secret.empty());
  a = resolve_iscsi_access(m, {"iqn.2026-12.org.example:web", "192.168.1.1"}, false);
  CHECK_FALSE(a.policy.allowed);
  CHECK(a.luns.empty());
  CHECK(a.policy.why.find("not reached from 192.168.1.1") != std::string::npos);

  a = resolve_iscsi_access(m, {"iqn.2026-12.org.example:other", "127.0.0.1"}, true);
  CHECK_FALSE(a.policy.allowed);  // hosts exist: the loopback rule no longer applies
  CHECK(a.policy.why.find("is no host's") != std::string::npos);
}

TEST_CASE("iSCSI access with no hosts: loopback initiators see every vdisk", "[iscsi]") {
  VirtMap m = map_with_hosts(false);
  auto a = resolve_iscsi_access(m, {"iqn.x", "127.0.0.1"}, true);
  CHECK(a.policy.allowed);
  REQUIRE(a.luns.size() == 2);  // not the hidden one
  CHECK((a.luns[0].lun == 0 && a.luns[0].vdisk == 1));
  CHECK((a.luns[1].lun == 1 && a.luns[1].vdisk == 2));
  CHECK_FALSE(resolve_iscsi_access(m, {"iqn.x", "192.0.2.1"}, true).policy.allowed);
  CHECK_FALSE(resolve_iscsi_access(m, {"iqn.x", "127.0.0.1"}, false).policy.allowed);
}

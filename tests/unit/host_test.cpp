// Hosts, their vdisk mappings, and who a host port lets reach which vdisk
// (model/host_edits.hpp, model/host_access.hpp): pure functions.
#include <catch2/catch.hpp>

#include <cerrno>

#include "model/edits.hpp"
#include "model/fc_edits.hpp"
#include "model/host_access.hpp"
#include "model/host_edits.hpp"
#include "model/virt_map.hpp"

using namespace sve;

namespace {

const MdiskOnline kAllOnline = [](uint32_t) { return true; };

// One pool of 16 MiB; vdisks a, b, c of 1 MiB (standalone: no I/O group).
ClusterModel base() {
  ClusterModel m;
  REQUIRE(add_mdisk(m, "m1", "/d/1", "u1", 16 << 20));
  REQUIRE(create_pool(m, "p", 1 << 20, {"m1"}, kAllOnline));
  for (const char* name : {"a", "b", "c"}) {
    NewVdisk v;
    v.name = name;
    v.pool = "p";
    v.size_bytes = 1 << 20;
    REQUIRE(create_vdisk(m, v, kAllOnline));
  }
  for (auto& v : m.vdisks) v.formatted = true;
  return m;
}

NewHost host(std::string name, std::vector<std::string> addresses, std::string identity = "") {
  NewHost h;
  h.name = std::move(name);
  h.addresses = std::move(addresses);
  h.nbd_identity = std::move(identity);
  return h;
}

NewHostMap mapping(std::string vdisk, std::string host) {
  NewHostMap m;
  m.vdisk = std::move(vdisk);
  m.host = std::move(host);
  return m;
}

}  // namespace

TEST_CASE("hosts: each is known some way, and no two the same way", "[hosts]") {
  ClusterModel m = base();
  auto none = create_host(m, host("h0", {}));
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("--nbd-identity") != std::string::npos);
  REQUIRE(create_host(m, host("h1", {"10.0.0.1", "10.1.0.0/16"}, "alice")));
  CHECK_FALSE(create_host(m, host("h1", {"10.0.0.9"})));            // its name
  CHECK_FALSE(create_host(m, host("h2", {"10.0.0.1"})));            // its address
  CHECK_FALSE(create_host(m, host("h2", {}, "alice")));             // its identity
  CHECK_FALSE(create_host(m, host("h2", {"10.0.0.300"})));          // not an address
  CHECK_FALSE(create_host(m, host("h2", {"10.0.0.0/33"})));         // nor a prefix
  CHECK_FALSE(create_host(m, host("h2", {"10.0.0.2", "10.0.0.2"})));  // twice
  CHECK_FALSE(create_host(m, host("h2", {}, "bad:identity")));      // the PSK file's ':'
  NewHost iscsi;
  iscsi.name = "h2";
  iscsi.iqn = "iqn.2026-12.org.example:host2";
  REQUIRE(create_host(m, iscsi));
  iscsi.name = "h3";
  CHECK_FALSE(create_host(m, iscsi));  // the same IQN
  for (const char* bad : {"iqn.2026-1.org.x", "IQN.2026-12.org.x", "iqn.2026-12.", "eui.123"}) {
    iscsi.iqn = bad;
    INFO(bad);
    CHECK_FALSE(create_host(m, iscsi));
  }
  iscsi.iqn = "eui.0123456789abcdef";
  CHECK(create_host(m, iscsi));
  // Changed: an address freed by one host may go to another.
  HostChange change;
  change.addresses = std::vector<std::string>{};
  REQUIRE(set_host(m, "h1", change));  // (still known by its identity)
  REQUIRE(create_host(m, host("h4", {"10.0.0.1"})));
  change = {};
  change.nbd_identity = "";
  auto unknown = set_host(m, "h1", change);  // nothing left to know it by
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("no way to be known") != std::string::npos);
  change = {};
  change.chap_secret = "short";
  CHECK_FALSE(set_host(m, "h2", change));
  change.chap_secret = "a-secret-of-16ch";
  REQUIRE(set_host(m, "h2", change));
  CHECK(m.find_host("h2")->chap_secret == "a-secret-of-16ch");
}

TEST_CASE("vdisk maps: LUNs, sharing, read-only, and what they keep from deletion",
          "[hosts]") {
  ClusterModel m = base();
  REQUIRE(create_host(m, host("h1", {"10.0.0.1"})));
  REQUIRE(create_host(m, host("h2", {"10.0.0.2"})));
  auto a = map_vdisk(m, mapping("a", "h1"));
  REQUIRE(a);
  CHECK(a.value().lun == 0);
  NewHostMap c = mapping("c", "h1");
  c.lun = 5;
  c.read_only = true;
  REQUIRE(map_vdisk(m, c));
  auto b = map_vdisk(m, mapping("b", "h1"));
  REQUIRE(b);
  CHECK(b.value().lun == 1);  // the lowest free
  CHECK_FALSE(map_vdisk(m, mapping("a", "h1")));  // mapped already
  NewHostMap taken = mapping("a", "h2");
  taken.force = true;
  taken.lun = 0;
  REQUIRE(map_vdisk(m, taken));  // h2's LUN 0 is free
  NewHostMap lun_taken = mapping("b", "h2");
  lun_taken.force = true;
  lun_taken.lun = 0;
  CHECK_FALSE(map_vdisk(m, lun_taken));
  auto shared = map_vdisk(m, mapping("c", "h2"));  // mapped to h1: only with --force
  REQUIRE_FALSE(shared);
  CHECK(shared.error().code == EBUSY);
  NewHostMap too_high = mapping("b", "h2");
  too_high.force = true;
  too_high.lun = kMaxLun + 1;
  CHECK_FALSE(map_vdisk(m, too_high));
  CHECK_FALSE(map_vdisk(m, mapping("nosuch", "h1")));
  CHECK_FALSE(map_vdisk(m, mapping("a", "nosuch")));
  // A mapping's bitmap is no host's.
  NewFcMap f;
  f.source = "b";
  f.target = "c";
  REQUIRE(create_fcmap(m, f, kAllOnline));
  std::string bitmap;
  for (const auto& v : m.vdisks)
    if (v.bitmap_of) bitmap = v.name;
  REQUIRE_FALSE(bitmap.empty());
  CHECK_FALSE(map_vdisk(m, mapping(bitmap, "h2")));
  // A mapped vdisk is not deleted; a host with mappings only with --force.
  auto kept = delete_vdisk(m, "a");
  REQUIRE_FALSE(kept);
  CHECK(kept.error().message.find("mapped to host") != std::string::npos);
  CHECK(delete_host(m, "h2", false).error().code == EBUSY);
  REQUIRE(unmap_vdisk(m, "a", "h1"));
  CHECK_FALSE(unmap_vdisk(m, "a", "h1"));
  REQUIRE(delete_host(m, "h2", true));
  CHECK(m.hostmaps.size() == 2);  // h1's b and c
  REQUIRE(delete_vdisk(m, "a"));
}

TEST_CASE("host ports: who reaches which vdisk", "[hosts]") {
  ClusterModel m = base();
  uint32_t a = m.find_vdisk("a")->id, b = m.find_vdisk("b")->id, c = m.find_vdisk("c")->id;
  auto map = build_virt_map(m);
  // No hosts: loopback clients of a loopback listener reach every vdisk.
  CHECK(resolve_access(*map, {"127.0.0.1", {}}, true).read_only(a) == false);
  CHECK(resolve_access(*map, {"::1", {}}, true).read_only(b) == false);
  CHECK(resolve_access(*map, {"127.0.0.5", {}}, true).every_vdisk);
  CHECK_FALSE(resolve_access(*map, {"10.0.0.1", {}}, true).read_only(a));
  CHECK_FALSE(resolve_access(*map, {"127.0.0.1", {}}, false).read_only(a));  // listener: not lo
  // Hosts: only what is mapped to each, read-only where so mapped.
  REQUIRE(create_host(m, host("h1", {"127.0.0.2", "10.0.0.0/8"})));
  REQUIRE(create_host(m, host("h2", {"10.1.0.0/16", "::ffff:10.2.0.0/120"}, "psk-h2")));
  REQUIRE(map_vdisk(m, mapping("a", "h1")));
  NewHostMap ro = mapping("b", "h2");
  ro.read_only = true;
  REQUIRE(map_vdisk(m, ro));
  map = build_virt_map(m);
  CHECK_FALSE(resolve_access(*map, {"127.0.0.1", {}}, true).read_only(a));  // no host now
  Access h1 = resolve_access(*map, {"127.0.0.2", {}}, true);
  REQUIRE(h1.host);
  CHECK(h1.host->name == "h1");
  CHECK(h1.read_only(a) == false);
  CHECK_FALSE(h1.read_only(b));
  CHECK_FALSE(h1.read_only(c));
  // The most specific range wins: 10.1.x.x is h2's, 10.3.x.x h1's.
  CHECK(resolve_access(*map, {"10.1.2.3", {}}, false).host->name == "h2");
  CHECK(resolve_access(*map, {"10.3.2.3", {}}, false).host->name == "h1");
  CHECK(resolve_access(*map, {"::ffff:10.1.2.3", {}}, false).host->name == "h2");
  CHECK(resolve_access(*map, {"10.1.2.3", {}}, false).read_only(b) == true);
  // A TLS identity names its host and nothing else does: not its address.
  CHECK(resolve_access(*map, {"10.3.2.3", "psk-h2"}, false).host->name == "h2");
  CHECK_FALSE(resolve_access(*map, {"10.1.2.3", "someone"}, false).host);
  CHECK_FALSE(resolve_access(*map, {"", {}}, false).host);
}

TEST_CASE("address ranges", "[hosts]") {
  AddressRange r;
  REQUIRE(parse_address_range("192.168.1.0/25", r));
  CHECK(address_in_range(r, "192.168.1.127"));
  CHECK_FALSE(address_in_range(r, "192.168.1.128"));
  CHECK(address_in_range(r, "::ffff:192.168.1.1"));
  CHECK_FALSE(address_in_range(r, "fe80::1"));
  REQUIRE(parse_address_range("2001:db8::/32", r));
  CHECK(address_in_range(r, "2001:db8:1::5"));
  CHECK_FALSE(address_in_range(r, "2001:db9::5"));
  CHECK_FALSE(address_in_range(r, "not an address"));
  REQUIRE(parse_address_range("0.0.0.0/0", r));
  CHECK(address_in_range(r, "8.8.8.8"));
  for (const char* bad : {"", "/8", "1.2.3.4/", "1.2.3.4/x", "1.2.3.4/1234", "::1/129", "host"})
    CHECK_FALSE(parse_address_range(bad, r));
  CHECK(is_loopback("127.1.2.3"));
  CHECK(is_loopback("::1"));
  CHECK(is_loopback("::ffff:127.0.0.1"));
  CHECK_FALSE(is_loopback("10.0.0.1"));
}

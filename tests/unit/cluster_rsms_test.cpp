// The production RSMs applied by hand: their refusals hold on their
// own, whatever the proposing node checked before it proposed (two nodes
// may propose at once, each on state the other's event then changes).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cluster/audit_log.hpp"
#include "cluster/host/cluster_rsms.hpp"
#include "cluster/state/cluster_state.hpp"
#include "model/model.hpp"

using namespace sve;
using namespace sve::cluster;
using nlohmann::json;

namespace {

Entry event_entry(ClusterEvent e, NodeSet members) {
  e.origin = 1;
  return Entry{GenId{1, 1}, pack_to_string(e), std::move(members)};
}

ClusterEvent removal(uint32_t node, uint64_t request) {
  ClusterEvent e;
  e.kind = ClusterEvent::node_remove;
  e.node = node;
  e.request = request;
  return e;
}

std::string cluster_of(std::vector<uint32_t> ids) {
  ClusterInfo info{"c", "uuid", {}, 1};
  for (uint32_t id : ids) info.nodes.push_back({id, "127.0.0.1:" + std::to_string(10900 + id)});
  return pack_to_string(info);
}

json only_reply(const std::vector<Response>& out) {
  REQUIRE(out.size() == 1);
  CHECK(out[0].target == 1);
  return json::parse(out[0].body);
}

}  // namespace

TEST_CASE("the membership RSM refuses to remove the last node", "[cluster]") {
  MembershipRsm rsm;
  std::string state = cluster_of({1});
  std::vector<Response> out;
  rsm.apply(7, event_entry(removal(1, 42), {1}), state, out);
  json r = only_reply(out);
  CHECK(r["ok"] == false);
  CHECK(r["request"] == 42);
  CHECK(r["error"].get<std::string>().find("last node") != std::string::npos);
  CHECK(unpack_from_string<ClusterInfo>(state)->nodes.size() == 1);
}

TEST_CASE("the membership RSM refuses a removal that leaves no majority of its generation",
          "[cluster]") {
  MembershipRsm rsm;
  // Two configured nodes, both serving: without node 2, one of two is left.
  std::string state = cluster_of({1, 2});
  std::vector<Response> out;
  rsm.apply(7, event_entry(removal(2, 5), {1, 2}), state, out);
  CHECK(only_reply(out)["ok"] == false);
  CHECK(unpack_from_string<ClusterInfo>(state)->nodes.size() == 2);

  // Three serving: two of three stay, the removal commits.
  state = cluster_of({1, 2, 3});
  out.clear();
  rsm.apply(8, event_entry(removal(3, 6), {1, 2, 3}), state, out);
  CHECK(only_reply(out)["ok"] == true);
  auto info = unpack_from_string<ClusterInfo>(state);
  REQUIRE(info);
  CHECK(info->nodes.size() == 2);
  CHECK(info->nodes_seq == 8);

  // Judged by the generation that ordered it, not by the configured nodes:
  // three configured, but that generation had only {1,3}.
  state = cluster_of({1, 2, 3});
  out.clear();
  rsm.apply(9, event_entry(removal(3, 7), {1, 3}), state, out);
  CHECK(only_reply(out)["ok"] == false);
  CHECK(unpack_from_string<ClusterInfo>(state)->nodes.size() == 3);
}

TEST_CASE("the membership RSM refuses a duplicate node or address", "[cluster]") {
  MembershipRsm rsm;
  std::string state = cluster_of({1, 2});
  ClusterEvent add;
  add.kind = ClusterEvent::node_add;
  add.node = 2;
  add.address = "127.0.0.1:10999";
  std::vector<Response> out;
  rsm.apply(3, event_entry(add, {1, 2}), state, out);
  CHECK(only_reply(out)["ok"] == false);
  add.node = 3;
  add.address = "127.0.0.1:10901";  // node 1's
  out.clear();
  rsm.apply(3, event_entry(add, {1, 2}), state, out);
  CHECK(only_reply(out)["ok"] == false);
  CHECK(unpack_from_string<ClusterInfo>(state)->nodes.size() == 2);
}

TEST_CASE("the config RSM commits a model only on top of the version it was made from",
          "[cluster]") {
  ConfigRsm rsm;
  ClusterModel current;
  current.version = 4;
  current.config_uuid = "u";
  std::string state = pack_to_string(current);
  ClusterModel next = current;
  next.config_uuid = "forged";  // the RSM keeps the cluster's
  ClusterEvent e;
  e.kind = ClusterEvent::config_replace;
  e.base = 3;  // stale
  e.body = pack_to_string(next);
  std::vector<Response> out;
  rsm.apply(10, event_entry(e, {1}), state, out);
  json r = only_reply(out);
  CHECK(r["ok"] == false);
  CHECK(r["conflict"] == true);
  CHECK(unpack_from_string<ClusterModel>(state)->version == 4);

  e.base = 4;
  out.clear();
  rsm.apply(11, event_entry(e, {1}), state, out);
  CHECK(only_reply(out)["ok"] == true);
  auto now = unpack_from_string<ClusterModel>(state);
  REQUIRE(now);
  CHECK(now->version == 5);
  CHECK(now->config_uuid == "u");

  // A body that does not decode changes nothing and answers nothing.
  e.base = 5;
  e.body = "\xc1 not msgpack";
  out.clear();
  rsm.apply(12, event_entry(e, {1}), state, out);
  CHECK(out.empty());
  CHECK(unpack_from_string<ClusterModel>(state)->version == 5);
}

TEST_CASE("the audit RSM numbers entries in commit order and keeps the newest", "[audit]") {
  AuditRsm rsm;
  std::string state;
  auto append = [&](uint64_t i, bool ok) {
    ClusterEvent e;
    e.kind = ClusterEvent::audit_append;
    e.request = i;
    AuditEntry line;
    line.seq = 999;  // the RSM's number wins over what a proposer wrote
    line.time_ms = 1000 * i;
    line.node = 2;
    line.who = "'adm' (administrator)";
    line.command = "{\"cmd\":\"vdisk.create\",\"n\":" + std::to_string(i) + "}";
    line.ok = ok;
    std::vector<Response> out;
    e.body = pack_to_string(line);
    rsm.apply(i, event_entry(e, {1, 2}), state, out);
    return only_reply(out);
  };
  CHECK(append(1, true)["result"]["seq"] == 1);
  CHECK(append(2, false)["result"]["seq"] == 2);
  // Another RSM's event leaves the log alone.
  std::vector<Response> none;
  rsm.apply(3, event_entry(removal(2, 3), {1, 2}), state, none);
  CHECK(none.empty());
  for (uint64_t i = 3; i <= kAuditKeep + 10; ++i) append(i, true);
  auto log = unpack_from_string<AuditLog>(state);
  REQUIRE(log);
  REQUIRE(log->entries.size() == kAuditKeep);
  CHECK(log->entries.front().seq == 11);
  CHECK(log->entries.back().seq == kAuditKeep + 10);
  CHECK(log->next == kAuditKeep + 11);
  // What the admin API shows: the newest `count`, none before `since`.
  json shown = audit_json(*log, json{{"count", 3}});
  REQUIRE(shown.size() == 3);
  CHECK(shown[2]["seq"] == kAuditKeep + 10);
  CHECK(audit_json(*log, json{{"since", kAuditKeep + 9}}).size() == 2);
  CHECK(audit_json(*log, json::object()).size() == kAuditKeep);
}

TEST_CASE("a node alone keeps its audit log in a file, numbered across restarts", "[audit]") {
  char tmpl[] = "/tmp/sve-audit-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string path = dir + "/audit.log";
  {
    AuditFile file(path);
    for (int i = 0; i < 3; ++i) {
      AuditEntry e;
      e.who = "a loopback client";
      e.command = "{\"cmd\":\"pool.create\"}";
      e.ok = i != 1;
      file.append(e);
    }
  }
  {
    std::ofstream(path, std::ios::app) << "not json\n{\"seq\": \"x\"}\n";  // skipped
    AuditFile again(path);
    again.append(AuditEntry{});
    AuditLog log = again.read();
    REQUIRE(log.entries.size() == 4);
    CHECK(log.entries[3].seq == 4);
    CHECK_FALSE(log.entries[1].ok);
  }
  AuditFile busy(path);
  for (size_t i = 0; i < 2 * kAuditKeep + 5; ++i) busy.append(AuditEntry{});
  AuditLog log = busy.read();
  CHECK(log.entries.size() == kAuditKeep);
  CHECK(log.entries.back().seq == 4 + 2 * kAuditKeep + 5);
  std::filesystem::remove_all(dir);
}

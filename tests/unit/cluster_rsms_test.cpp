// The two production RSMs applied by hand: their refusals hold on their
// own, whatever the proposing node checked before it proposed (two nodes
// may propose at once, each on state the other's event then changes).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

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

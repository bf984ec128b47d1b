// The production ClusterHost on one node (the simulator runs stand-ins for
// its RSMs): founding a cluster, the model RSM's rule that a change commits
// only on top of the version it was made from, the membership RSM's
// refusals, answers that come back once and to this node, and recovery of
// both from the state copies on disk after a restart.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "cluster/host/cluster_host.hpp"

using namespace sve;
using namespace sve::cluster;
using nlohmann::json;

namespace {

struct LoneNode {
  std::string dir;
  std::map<uint64_t, std::vector<json>> replies;
  ClusterModel last_config;
  std::unique_ptr<ClusterHost> host;

  LoneNode() {
    char tmpl[] = "/tmp/sve-host-XXXXXX";
    dir = ::mkdtemp(tmpl);
    boot();
  }
  ~LoneNode() {
    host.reset();
    std::filesystem::remove_all(dir);
  }
  void boot() {
    host.reset();
    ClusterHostOptions o;
    o.self = 1;
    o.address = "127.0.0.1:1";
    o.data_dir = dir;
    ClusterHostCallbacks cb;
    cb.send = [](NodeId, const std::string&, std::string) {};
    cb.reply = [this](uint64_t id, json reply) { replies[id].push_back(std::move(reply)); };
    cb.config_changed = [this](const ClusterModel& c) { last_config = c; };
    cb.membership_changed = [](const ClusterInfo&) {};
    host = std::make_unique<ClusterHost>(o, cb);
    host->start();
  }
  // Ticks (the real clock: heartbeats of 20 ms) until `done`, 10 s at most.
  template <typename Done>
  void tick_until(Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      host->tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  json answer(uint64_t id) {
    tick_until([&] { return replies.count(id) > 0; });
    REQUIRE(replies[id].size() == 1);  // once
    return replies[id][0];
  }
  // Founds cluster `name` on this node and waits until it has.
  void found(const std::string& name, const std::string& uuid) {
    ClusterModel initial;
    initial.config_uuid = uuid;
    auto created = host->create(name, initial);
    REQUIRE(created);
    json r = answer(created.value());
    REQUIRE(r["ok"] == true);
    REQUIRE(r["result"]["name"] == name);
  }
  ClusterModel config_with(const std::string& pool) const {
    ClusterModel next = host->config();
    next.config_uuid = "not-this-one";  // the cluster's own is kept
    next.pools.push_back({static_cast<uint32_t>(next.pools.size() + 10), pool, 1 << 20, {}, 0});
    return next;
  }
};

}  // namespace

TEST_CASE("a lone node founds a cluster, and a model change commits only on its own base",
          "[cluster][host]") {
  LoneNode n;
  n.found("c1", "u-1");
  CHECK(n.host->in_cluster());
  CHECK(n.host->info().name == "c1");
  CHECK_FALSE(n.host->create("c2", ClusterModel{}));  // one cluster per node
  uint64_t base = n.host->config().version;

  auto first = n.host->replace_config(base, n.config_with("p1"));
  REQUIRE(first);
  json r = n.answer(first.value());
  CHECK(r["ok"] == true);
  CHECK(r["result"]["version"] == base + 1);
  CHECK(n.host->config().version == base + 1);
  CHECK(n.host->config().config_uuid == "u-1");  // kept, whatever the change says
  CHECK(n.last_config.pools.size() == 1);

  // Made from the version before: a conflict, and nothing changes.
  ClusterModel stale = n.host->config();
  stale.pools.clear();
  auto second = n.host->replace_config(base, stale);
  REQUIRE(second);
  r = n.answer(second.value());
  CHECK(r["ok"] == false);
  CHECK(r["conflict"] == true);
  CHECK(r["version"] == base + 1);
  CHECK(n.host->config().pools.size() == 1);

  // Neither an unknown node nor the last one can be removed.
  CHECK_FALSE(n.host->remove_node(7));
  CHECK_FALSE(n.host->remove_node(1));
  CHECK(n.host->info().nodes.size() == 1);

  // A restart recovers both states from the copies on disk.
  n.boot();
  CHECK(n.host->in_cluster());
  CHECK(n.host->info().name == "c1");
  CHECK(n.host->config().version == base + 1);
  CHECK(n.host->config().pools.size() == 1);
  // And the node serves again on its own: a change commits.
  n.tick_until([&] { return n.host->has_quorum(); });
  auto third = n.host->replace_config(base + 1, n.config_with("p2"));
  REQUIRE(third);
  CHECK(n.answer(third.value())["ok"] == true);
  CHECK(n.host->config().pools.size() == 2);
}

TEST_CASE("a node added twice under one address is refused by the membership RSM",
          "[cluster][host]") {
  LoneNode n;
  n.found("c", "u-2");
  // Node 1's own address for node 2: refused, and the membership is as it was.
  auto dup = n.host->add_node(2, "127.0.0.1:1");
  REQUIRE(dup);
  json r = n.answer(dup.value());
  CHECK(r["ok"] == false);
  CHECK(r["error"].get<std::string>().find("address") != std::string::npos);
  CHECK(n.host->info().nodes.size() == 1);
  CHECK_FALSE(n.host->add_node(1, "127.0.0.1:9"));  // already configured
  CHECK_FALSE(n.host->add_node(0, "127.0.0.1:9"));
}

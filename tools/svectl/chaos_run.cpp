#include "tools/svectl/chaos_run.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "admin/admin_client.hpp"
#include "tools/svectl/verifying_workload.hpp"

namespace sve {
namespace {

using nlohmann::json;

struct RunOptions {
  double duration_s = 0;
  uint64_t seed = 1;
  std::string faults = "all";
  double rate = 6;
  std::vector<HostPortAddress> nodes;
  std::string vdisk = "chaos";
};

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::optional<std::string> parse(const std::vector<std::string>& args, RunOptions& o) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) return a + " needs a value";
    const std::string& v = args[++i];
    try {
      if (a == "--duration") o.duration_s = std::stod(v);
      else if (a == "--seed") o.seed = std::stoull(v);
      else if (a == "--faults") o.faults = v;
      else if (a == "--rate") o.rate = std::stod(v);
      else if (a == "--vdisk") o.vdisk = v;
      else if (a == "--nodes") {
        std::istringstream in(v);
        for (std::string item; std::getline(in, item, ',');) {
          auto addr = parse_address(item);
          if (!addr) return "--nodes: " + addr.error().message;
          o.nodes.push_back(addr.value());
        }
      } else {
        return "chaos run: unknown option " + a;
      }
    } catch (const std::exception&) {
      return a + " needs a number";
    }
  }
  if (!(o.duration_s > 0)) return "chaos run needs --duration SECONDS";
  return std::nullopt;
}

Result<json> call(const HostPortAddress& node, json request) {
  auto reply = admin_call(node, request);
  if (!reply) return reply.error();
  if (!reply->value("ok", false))
    return make_error(node.to_string() + ": " + reply->value("error", std::string("failed")));
  return (*reply)["result"];
}

// Waits until every node's I/O process serves and, in a cluster, holds a
// lease with every configured node a member.
bool wait_settled(const std::vector<HostPortAddress>& nodes, uint64_t deadline_ms) {
  while (now_ms() < deadline_ms) {
    bool all = true;
    for (const auto& n : nodes) {
      auto daemon = call(n, {{"cmd", "daemon.status"}});
      if (!daemon || !daemon.value().value("io_serving", false)) {
        all = false;
        break;
      }
      auto status = call(n, {{"cmd", "cluster.status"}});  // fails on a standalone node
      if (!status) continue;
      const json& s = status.value();
      if (s.value("in_cluster", false) &&
          !(s.value("quorum", false) &&
            s["members"].size() == s.value("configured", size_t{0}))) {
        all = false;
        break;
      }
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

}  // namespace

int run_chaos(const HostPortAddress& admin, const std::vector<std::string>& args, bool as_json) {
  RunOptions o;
  if (auto error = parse(args, o)) {
    std::cerr << "svectl: " << *error << "\n";
    return 2;
  }
  if (o.nodes.empty()) o.nodes.push_back(admin);
  // Each node's host port, and the vdisk's size.
  std::vector<HostPortAddress> ports;
  for (const auto& n : o.nodes) {
    auto status = call(n, {{"cmd", "daemon.status"}});
    if (!status) {
      std::cerr << "svectl: " << status.error().message << "\n";
      return 1;
    }
    auto port = parse_address(status.value().value("nbd", std::string()));
    if (!port) {
      std::cerr << "svectl: " << n.to_string() << " did not say where its host port is\n";
      return 1;
    }
    if (port->host == "0.0.0.0") port->host = n.host;
    ports.push_back(port.value());
  }
  auto shown = call(o.nodes[0], {{"cmd", "vdisk.show"}, {"name", o.vdisk}});
  if (!shown) {
    std::cerr << "svectl: " << shown.error().message
              << " (chaos run writes a vdisk of its own: --vdisk NAME, default 'chaos')\n";
    return 1;
  }
  uint64_t blocks = std::min<uint64_t>(shown.value().value("size", uint64_t{0}) / 4096, 16384);
  if (blocks < 64) {
    std::cerr << "svectl: vdisk '" << o.vdisk << "' is too small for the workload\n";
    return 1;
  }

  // The monkeys, one per node, each with its own seed drawn from the run's.
  for (size_t i = 0; i < o.nodes.size(); ++i) {
    call(o.nodes[i], {{"cmd", "chaos.stop"}});
    auto started = call(o.nodes[i], {{"cmd", "chaos.start"},
                                     {"seed", o.seed * 1000 + i + 1},
                                     {"faults", o.faults},
                                     {"rate", o.rate}});
    if (!started) {
      std::cerr << "svectl: " << started.error().message << "\n";
      for (size_t j = 0; j < i; ++j) call(o.nodes[j], {{"cmd", "chaos.stop"}});
      return 1;
    }
  }
  VerifyingWorkload workload(ports, o.vdisk, blocks, o.seed);
  std::atomic<bool> stop{false};
  std::thread writer([&] { workload.run(stop); });
  uint64_t began = now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<uint64_t>(o.duration_s * 1000)));

  // Stop the monkeys (a node restarting answers once it is back), let the
  // cluster settle with the workload still running, then verify.
  std::map<std::string, uint64_t> by_kind;
  uint64_t injected = 0;
  json per_node = json::array();
  for (const auto& n : o.nodes) {
    Result<json> report = make_error("not reached");
    for (int attempt = 0; attempt < 60 && !report; ++attempt) {
      report = call(n, {{"cmd", "chaos.stop"}, {"log", 100000}});  // every fault
      if (!report) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (!report) {
      per_node.push_back({{"node", n.to_string()}, {"error", report.error().message}});
      continue;
    }
    injected += report.value().value("injected", uint64_t{0});
    json kinds = report.value().value("by_kind", json::object());
    for (auto& [kind, count] : kinds.items()) by_kind[kind] += count.get<uint64_t>();
    per_node.push_back(report.value());
  }
  bool settled = wait_settled(o.nodes, now_ms() + 90'000);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // writes on the settled cluster
  stop = true;
  writer.join();
  uint64_t ran_ms = now_ms() - began;
  const WorkloadStats& stats = workload.stats();
  uint64_t lost = 0, wrong_final = 0;
  bool complete = true;
  std::vector<std::string> examples = stats.wrong;
  for (const auto& port : ports) {
    VerifyResult v = workload.verify(port, now_ms() + 60'000);
    lost = std::max(lost, v.lost);
    wrong_final = std::max(wrong_final, v.wrong);
    complete &= v.complete;
    examples.insert(examples.end(), v.examples.begin(), v.examples.end());
  }
  uint64_t wrong = stats.wrong_reads + wrong_final;
  uint64_t longest = 0, total = 0;
  for (const auto& [at, ms] : stats.unavailable) {
    longest = std::max(longest, ms);
    total += ms;
  }
  auto windows = stats.unavailable;  // the longest first
  std::sort(windows.begin(), windows.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  if (windows.size() > 5) windows.resize(5);
  if (as_json) {
    std::cout << json{{"seed", o.seed},
                      {"duration_ms", ran_ms},
                      {"nodes", o.nodes.size()},
                      {"faults_injected", injected},
                      {"faults_by_kind", by_kind},
                      {"monkeys", per_node},
                      {"writes_acknowledged", stats.writes_acked},
                      {"reads_checked", stats.reads_checked},
                      {"failures_ridden_through", stats.failures},
                      {"error_replies", stats.error_replies},
                      {"unavailability_windows", stats.unavailable.size()},
                      {"longest_windows", windows},
                      {"unavailable_longest_ms", longest},
                      {"unavailable_total_ms", total},
                      {"settled", settled},
                      {"verified_every_block", complete},
                      {"acknowledged_writes_lost", lost},
                      {"wrong_reads", wrong},
                      {"examples", examples}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "chaos run: seed " << o.seed << ", " << ran_ms / 1000.0 << " s, "
              << o.nodes.size() << " nodes, faults " << o.faults << " at " << o.rate
              << " a minute per node\n";
    std::cout << "faults injected: " << injected;
    const char* sep = " (";
    for (auto& [kind, count] : by_kind) {
      std::cout << sep << kind << " " << count;
      sep = ", ";
    }
    std::cout << (by_kind.empty() ? "" : ")") << "\n";
    for (const auto& r : per_node)
      for (const auto& e : r.value("log", json::array()))
        std::cout << "  fault " << e.value("node", 0) << "." << e.value("number", 0) << " at "
                  << e.value("time_ms", uint64_t{0}) << " (seed " << e.value("seed", 0)
                  << "): " << e.value("kind", "") << " " << e.value("target", "")
                  << (e.contains("duration_ms")
                          ? " for " + std::to_string(e["duration_ms"].get<uint64_t>()) + " ms"
                          : "")
                  << "\n";
    std::cout << "I/O done: " << stats.writes_acked << " writes acknowledged, "
              << stats.reads_checked << " reads checked, " << stats.failures
              << " errors and lost connections ridden through (" << stats.error_replies
              << " of them error replies)\n";
    std::cout << "unavailability windows: " << stats.unavailable.size() << " (longest "
              << longest << " ms, " << total << " ms in all)\n";
    for (const auto& [at, ms] : windows)
      std::cout << "  " << ms << " ms from " << at << "\n";
    std::cout << "cluster settled after the faults: " << (settled ? "yes" : "NO") << "\n";
    std::cout << "every block read back through every node: " << (complete ? "yes" : "NO")
              << "\n";
    for (const auto& e : examples) std::cout << "  " << e << "\n";
    std::cout << "acknowledged writes lost: " << lost << "\n";
    std::cout << "wrong reads: " << wrong << "\n";
  }
  return lost == 0 && wrong == 0 && complete && settled ? 0 : 1;
}

}  // namespace sve

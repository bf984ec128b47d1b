// Runs the cluster simulator over a range of seeds, or for a time budget,
// and prints every failing seed (replay one with --seed N).
//   cluster_sim [--seeds FIRST-LAST] [--seed N] [--time SECONDS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/sim/cluster_sim.hpp"

int main(int argc, char** argv) {
  uint64_t first = 1, last = 100;
  double budget = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seeds" && i + 1 < argc) {
      std::string v = argv[++i];
      auto dash = v.find('-');
      first = std::stoull(v.substr(0, dash));
      last = dash == std::string::npos ? first : std::stoull(v.substr(dash + 1));
    } else if (a == "--seed" && i + 1 < argc) {
      first = last = std::stoull(argv[++i]);
    } else if (a == "--time" && i + 1 < argc) {
      budget = std::stod(argv[++i]);
      last = UINT64_MAX;
    } else {
      std::fprintf(stderr, "usage: cluster_sim [--seeds A-B] [--seed N] [--time S]\n");
      return 2;
    }
  }
  auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0, failures = 0, commits = 0, crashes = 0, snapshots = 0, changes = 0, removals = 0;
  for (uint64_t seed = first; seed <= last; ++seed) {
    if (budget > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > budget)
      break;
    sve::cluster::sim::SimOptions options;
    options.seed = seed;
    auto r = sve::cluster::sim::run_simulation(options);
    ++runs;
    commits += r.commits;
    crashes += r.crashes;
    snapshots += r.snapshots;
    changes += r.membership_changes;
    removals += r.removals;
    if (!r.ok) {
      ++failures;
      std::printf("FAIL %s\n", r.failure.c_str());
    }
  }
  std::printf("%lu seeds, %lu failed, %lu events committed, %lu crashes, %lu snapshots installed, "
              "%lu membership changes proposed, %lu nodes removed\n",
              (unsigned long)runs, (unsigned long)failures, (unsigned long)commits,
              (unsigned long)crashes, (unsigned long)snapshots, (unsigned long)changes,
              (unsigned long)removals);
  return failures ? 1 : 0;
}

// Runs the data-path simulator over a range of seeds, or for a time budget,
// and prints every failing seed (replay one with --seed N --trace).
//   datapath_sim [--seeds FIRST-LAST] [--seed N] [--time SECONDS] [--nodes 2|4]
//                [--scenario NAME] [--broken NAME [--expect-caught]] [--trace]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/sim/datapath_sim.hpp"

int main(int argc, char** argv) {
  uint64_t first = 1, last = 20;
  double budget = 0;
  // A negative control (--broken): succeed only if the checker caught it.
  bool expect_caught = false;
  sve::datapath_sim::DpOptions base;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool more = i + 1 < argc;
    if (a == "--seeds" && more) {
      std::string v = argv[++i];
      auto dash = v.find('-');
      first = std::strtoull(v.substr(0, dash).c_str(), nullptr, 10);
      last = dash == std::string::npos ? first
                                       : std::strtoull(v.substr(dash + 1).c_str(), nullptr, 10);
    } else if (a == "--seed" && more) {
      first = last = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--time" && more) {
      budget = std::strtod(argv[++i], nullptr);
      last = UINT64_MAX;
    } else if (a == "--nodes" && more) {
      base.nodes = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--scenario" && more) {
      base.scenario = argv[++i];
    } else if (a == "--broken" && more) {
      base.broken = argv[++i];
    } else if (a == "--expect-caught") {
      expect_caught = true;
    } else if (a == "--trace") {
      base.trace = true;
    } else {
      std::fprintf(stderr,
                   "usage: datapath_sim [--seeds A-B] [--seed N] [--time S] [--nodes 2|4] "
                   "[--scenario NAME] [--broken NAME [--expect-caught]] [--trace]\n");
      return 2;
    }
  }
  auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0, failures = 0;
  sve::datapath_sim::DpResult sum;
  for (uint64_t seed = first; seed <= last; ++seed) {
    if (budget > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > budget)
      break;
    auto options = base;
    options.seed = seed;
    auto r = sve::datapath_sim::run_datapath(options);
    ++runs;
    sum.writes_acked += r.writes_acked;
    sum.blocks_checked += r.blocks_checked;
    sum.io_errors += r.io_errors;
    sum.crashes += r.crashes;
    sum.io_restarts += r.io_restarts;
    sum.nvram_lost += r.nvram_lost;
    sum.isolations += r.isolations;
    sum.moves += r.moves;
    sum.transitions += r.transitions;
    sum.forwarded += r.forwarded;
    sum.mirrored += r.mirrored;
    if (!r.ok) {
      ++failures;
      std::printf("FAIL %s\n", r.failure.c_str());
    }
  }
  std::printf("%lu seeds, %lu failed: %lu writes acknowledged, %lu blocks read back, %lu I/O "
              "errors, %lu crashes (%lu with NVRAM lost), %lu I/O process restarts, %lu nodes cut off, %lu moves and %lu "
              "cache transitions proposed, %lu requests forwarded, %lu copies mirrored\n",
              (unsigned long)runs, (unsigned long)failures, (unsigned long)sum.writes_acked,
              (unsigned long)sum.blocks_checked, (unsigned long)sum.io_errors,
              (unsigned long)sum.crashes, (unsigned long)sum.nvram_lost,
              (unsigned long)sum.io_restarts,
              (unsigned long)sum.isolations, (unsigned long)sum.moves,
              (unsigned long)sum.transitions, (unsigned long)sum.forwarded,
              (unsigned long)sum.mirrored);
  if (expect_caught) return failures ? 0 : 1;
  return failures ? 1 : 0;
}

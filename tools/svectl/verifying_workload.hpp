#pragma once
// The verifying workload of `svectl chaos run` (the same rules as the fault
// tests' tests/integration/verifier.py): 4 KiB blocks, each written with
// its own address and a generation number and a pattern derived from both,
// several requests in flight, at most one per block. It records which
// writes the node acknowledged and which were only sent (no answer: they
// may or may not have landed). Reads in between, and a final read of every
// block, must find the last acknowledged generation or a later one sent;
// anything else is a lost write or a wrong read.
//
// On an error or a lost connection it moves to the next node, as a host
// fails over, and goes on.
#include <atomic>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "hw/port/tcp.hpp"

namespace sve {

struct WorkloadStats {
  uint64_t writes_acked = 0;
  uint64_t reads_checked = 0;
  uint64_t failures = 0;  // error replies and lost connections ridden through
  uint64_t error_replies = 0;  // of those, requests a node answered with an error
  uint64_t wrong_reads = 0;
  std::vector<std::string> wrong;  // the first few, described
  // Stretches of at least 500 ms in which nothing completed: when each
  // began (wall clock, ms since the epoch) and how long it lasted.
  std::vector<std::pair<uint64_t, uint64_t>> unavailable;
};

struct VerifyResult {
  bool complete = false;  // every block read
  uint64_t blocks = 0;
  uint64_t lost = 0;   // blocks whose last acknowledged write is gone
  uint64_t wrong = 0;  // blocks holding something never written there
  std::vector<std::string> examples;
};

class VerifyingWorkload {
 public:
  VerifyingWorkload(std::vector<HostPortAddress> nodes, std::string vdisk, uint64_t blocks,
                    uint64_t seed, uint32_t depth = 8);

  // Writes (and reads) until `stop` is set.
  void run(const std::atomic<bool>& stop);
  // Reads every block through `node` and checks it; retries a failed read
  // until `deadline_ms` (steady clock) passes.
  VerifyResult verify(const HostPortAddress& node, uint64_t deadline_ms);

  const WorkloadStats& stats() const { return stats_; }

 private:
  struct Block {
    uint64_t acked = 0;              // last acknowledged generation (0: none)
    std::vector<uint64_t> sent;      // every generation sent
    bool busy = false;
  };
  // Whether `gen` is what the block may hold now, given what was acked.
  bool acceptable(const Block& b, uint64_t gen) const;
  void note_wrong(const std::string& what);

  std::vector<HostPortAddress> nodes_;
  std::string vdisk_;
  std::vector<Block> blocks_;
  std::mt19937_64 rng_;
  uint32_t depth_;
  uint64_t next_gen_ = 1;
  size_t node_index_ = 0;
  WorkloadStats stats_;
};

// The block's contents for generation `gen`, and back (0: zeroes, never
// written; nullopt: not one of the workload's blocks, or not this block's).
std::vector<uint8_t> stamped_block(uint64_t block, uint64_t gen);
std::optional<uint64_t> stamped_generation(const uint8_t* data, uint64_t block);

}  // namespace sve

#pragma once
// sve-bench's load generator for one core, in the spirit of SPDK's bdevperf:
// keeps `queue_depth` requests in flight against the top of that core's
// facility stack, resubmitting each one as it completes, and records each
// request's latency. It lives on its core: start(), stop() and every
// completion run on the core's reactor thread. Request contexts and buffers
// come from the core's pools, taken once at start-up and reused.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "io/protocol.hpp"
#include "io/reactor/core_io.hpp"
#include "util/latency_histogram.hpp"

namespace sve {

struct BenchJob {
  uint32_t volume = 1;
  uint64_t volume_bytes = 0;
  uint32_t queue_depth = 32;
  uint32_t block_bytes = 4096;
  unsigned read_percent = 100;  // 0 = all writes
  bool random = true;
  uint64_t seed = 1;
  uint64_t stride = 0;  // sequential: how far each request moves on (0: its size)
  uint64_t count = 0;   // requests to issue in all (0: until stopped)
};

struct BenchResult {
  uint64_t reads = 0, writes = 0, errors = 0;
  double seconds = 0;
  LatencyHistogram latency;
};

class BenchClient final : public IoClient {
 public:
  BenchClient(CoreIo& core, IoServer& top, const BenchJob& job, unsigned core_index);
  ~BenchClient() override;

  // Both on the core's thread. stop() lets the requests in flight finish;
  // `drained` runs once the last one is back.
  void start();
  void stop(std::function<void()> drained);
  // Issues job.count requests and runs `done` when the last is back.
  void run_count(std::function<void()> done);
  const BenchResult& result() const { return result_; }

  void io_done(IoRequestPtr done) override;

 private:
  void issue(IoRequestPtr r);

  CoreIo& core_;
  IoServer& top_;
  BenchJob job_;
  PoolAccount requests_;
  PoolAccount pages_;
  std::vector<BufferRef> buffers_;
  std::mt19937_64 rng_;
  uint64_t next_offset_ = 0;
  uint32_t in_flight_ = 0;
  uint64_t issued_ = 0;
  bool stopping_ = false;
  std::function<void()> drained_;
  std::chrono::steady_clock::time_point started_;
  BenchResult result_;
};

}  // namespace sve

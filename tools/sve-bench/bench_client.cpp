#include "tools/sve-bench/bench_client.hpp"

#include <stdexcept>

namespace sve {
namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

BenchClient::BenchClient(CoreIo& core, IoServer& top, const BenchJob& job, unsigned core_index)
    : core_(core),
      top_(top),
      job_(job),
      requests_("bench", core.frontend_requests(), 0, job.queue_depth),
      pages_("bench", core.frontend_buffers(), 0, core.frontend_buffers().limit()),
      rng_(job.seed * 1000003 + core_index) {
  uint64_t pages = BufferPool::pages_for(job.block_bytes);
  for (uint32_t i = 0; i < job.queue_depth; ++i) {
    if (!pages_.try_acquire(pages))
      throw std::runtime_error("queue depth x block size exceeds the core's buffer memory");
    buffers_.push_back(core.buffers().build(pages_, job.block_bytes));
  }
  // Sequential jobs on several cores start at different places.
  next_offset_ = (job.volume_bytes / 16 * core_index) / job.block_bytes * job.block_bytes;
}

BenchClient::~BenchClient() { buffers_.clear(); }

void BenchClient::start() {
  started_ = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < job_.queue_depth && (job_.count == 0 || i < job_.count); ++i) {
    if (!requests_.try_acquire(1))
      throw std::runtime_error("not enough request contexts for the queue depth");
    IoRequestPtr r = core_.requests().make(requests_);
    r->buffer = buffers_[i];
    r->client = this;
    ++in_flight_;
    issue(std::move(r));
  }
}

void BenchClient::issue(IoRequestPtr r) {
  uint64_t blocks = job_.volume_bytes / job_.block_bytes;
  uint64_t offset;
  if (job_.random) {
    offset = (rng_() % blocks) * job_.block_bytes;
  } else {
    offset = next_offset_;
    next_offset_ += job_.stride ? job_.stride : job_.block_bytes;
    if (next_offset_ + job_.block_bytes > job_.volume_bytes) next_offset_ = 0;
  }
  bool read = job_.read_percent >= 100 ||
              (job_.read_percent > 0 && rng_() % 100 < job_.read_percent);
  r->op = read ? IoOp::read : IoOp::write;
  r->volume = job_.volume;
  r->offset = offset;
  r->length = job_.block_bytes;
  r->buffer_offset = 0;
  r->status = 0;
  r->cookie = now_ns();
  ++issued_;
  top_.submit(std::move(r));
}

void BenchClient::io_done(IoRequestPtr done) {
  result_.latency.record(now_ns() - done->cookie);
  if (done->status) ++result_.errors;
  (done->op == IoOp::read ? result_.reads : result_.writes) += 1;
  if (!stopping_ && (job_.count == 0 || issued_ < job_.count)) {
    issue(std::move(done));
    return;
  }
  done.reset();
  if (--in_flight_ == 0 && drained_) drained_();
}

void BenchClient::run_count(std::function<void()> done) {
  drained_ = std::move(done);
  start();
}

void BenchClient::stop(std::function<void()> drained) {
  stopping_ = true;
  result_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  drained_ = std::move(drained);
}

}  // namespace sve

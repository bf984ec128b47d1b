#include "io/reactor/core_io.hpp"

#include <algorithm>
#include <string>


namespace sve {
namespace {
thread_local CoreIo* tls_core = nullptr;
}  // namespace

CoreIo* CoreIo::current() { return tls_core; }
void CoreIo::set_current(CoreIo* core) {
  tls_core = core;
  CompletionQueue::set_current(core ? &core->completions_ : nullptr);
}

Result<std::unique_ptr<CoreIo>> CoreIo::create(unsigned index, const CoreIoConfig& config,
                                               const std::vector<RequestReserve>& reserves) {
  std::string name = "core" + std::to_string(index);
  // The facilities' reserves, and as much again at least for the front end.
  uint64_t reserved = 0;
  for (const auto& r : reserves) reserved += r.contexts;
  if (config.requests < 2 * reserved || config.requests == 0)
    return make_error(name + ": at least " + std::to_string(std::max<uint64_t>(1, 2 * reserved)) +
                      " request contexts per core are needed");
  if (config.buffer_bytes < 2 * (32ull << 20))
    return make_error(name + ": at least 64 MiB of buffer memory per core is needed "
                             "(two requests of the largest size)");
  std::unique_ptr<CoreIo> core(new CoreIo());
  core->index_ = index;
  auto ring = UringEngine::create();
  if (!ring) return ring.error();
  core->ring_ = std::move(ring.value());
  auto buffers = BufferPool::create(name + ".buffers", config.buffer_bytes, config.requests);
  if (!buffers) return buffers.error();
  core->buffers_ = std::move(buffers.value());
  core->buffers_->set_fixed_index(0);
  if (auto st = core->ring_->register_buffers(core->buffers_->region()); !st) return st.error();
  core->requests_ = std::make_unique<RequestPool>(name + ".requests", config.requests);

  uint64_t pages = core->buffers_->root().limit();
  core->frontend_buffers_ =
      std::make_unique<PoolAccount>("frontend", core->buffers_->root(), 0, pages);
  for (const auto& r : reserves)
    core->facility_requests_.push_back(std::make_unique<PoolAccount>(
        r.facility, core->requests_->root(), r.contexts, config.requests));
  core->frontend_requests_ = std::make_unique<PoolAccount>(
      "frontend", core->requests_->root(), 0, config.requests - static_cast<uint32_t>(reserved));
  return core;
}

PoolAccount* CoreIo::facility_requests(const std::string& facility) {
  for (auto& a : facility_requests_)
    if (a->name() == facility) return a.get();
  return nullptr;
}

CoreIo::~CoreIo() = default;

}  // namespace sve

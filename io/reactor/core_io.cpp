#include "io/reactor/core_io.hpp"

#include <algorithm>
#include <string>

#include "virt/virt_map.hpp"

namespace sve {
namespace {
thread_local CoreIo* tls_core = nullptr;
}  // namespace

CoreIo* CoreIo::current() { return tls_core; }
void CoreIo::set_current(CoreIo* core) { tls_core = core; }

Result<std::unique_ptr<CoreIo>> CoreIo::create(unsigned index, const CoreIoConfig& config) {
  std::string name = "core" + std::to_string(index);
  // Virtualization needs up to kMaxPieces contexts for one request; it gets
  // four requests' worth for itself, and the front end everything else.
  uint32_t virt_reserve = 4 * kMaxPieces;
  if (config.requests < 2 * virt_reserve)
    return make_error(name + ": at least " + std::to_string(2 * virt_reserve) +
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
  core->virt_requests_ = std::make_unique<PoolAccount>("virt", core->requests_->root(),
                                                       virt_reserve, config.requests);
  core->frontend_requests_ = std::make_unique<PoolAccount>(
      "frontend", core->requests_->root(), 0, config.requests - virt_reserve);
  return core;
}

CoreIo::~CoreIo() = default;

}  // namespace sve

#pragma once
// What one core owns for I/O, created at start-up and used only by that
// core's reactor thread: its io_uring ring, its buffer memory (registered
// with the ring) and its pool of request contexts, with the facilities'
// accounts in the pools' trees:
//
//   buffer pages:      core root -> front end -> one account per connection
//   request contexts:  core root -> front end -> one account per connection
//                                -> virtualization (reserved)
//
// Why it cannot deadlock is in docs/io-memory.md.
#include <cstdint>
#include <memory>

#include "io/buffer/buffer_pool.hpp"
#include "io/pool/request_pool.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/result.hpp"

namespace sve {

struct CoreIoConfig {
  uint64_t buffer_bytes = 64ull << 20;  // this core's share of the node's
  uint32_t requests = 4096;             // request contexts of this core
};

class CoreIo {
 public:
  static Result<std::unique_ptr<CoreIo>> create(unsigned index, const CoreIoConfig& config);
  ~CoreIo();

  unsigned index() const { return index_; }
  UringEngine& ring() { return *ring_; }
  BufferPool& buffers() { return *buffers_; }
  RequestPool& requests() { return *requests_; }
  PoolAccount& frontend_buffers() { return *frontend_buffers_; }
  PoolAccount& frontend_requests() { return *frontend_requests_; }
  PoolAccount& virt_requests() { return *virt_requests_; }

  // The core whose reactor runs on this thread, or null.
  static CoreIo* current();
  static void set_current(CoreIo* core);

 private:
  CoreIo() = default;
  unsigned index_ = 0;
  std::unique_ptr<UringEngine> ring_;
  std::unique_ptr<BufferPool> buffers_;
  std::unique_ptr<RequestPool> requests_;
  std::unique_ptr<PoolAccount> frontend_buffers_;
  std::unique_ptr<PoolAccount> frontend_requests_;
  std::unique_ptr<PoolAccount> virt_requests_;
};

}  // namespace sve

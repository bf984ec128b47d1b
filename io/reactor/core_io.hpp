#pragma once
// What one core owns for I/O, created at start-up and used only by that
// core's reactor thread: its io_uring ring, its buffer memory (registered
// with the ring) and its pool of request contexts, with the facilities'
// accounts in the pools' trees:
//
//   buffer pages:      core root -> front end -> one account per connection
//   request contexts:  core root -> front end -> one account per connection
//                                -> each facility that makes requests of its
//                                   own (a reserve it names at start-up)
//
// Why it cannot deadlock is in docs/io-memory.md.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/buffer/buffer_pool.hpp"
#include "io/request_pool.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/result.hpp"

namespace sve {

struct CoreIoConfig {
  uint64_t buffer_bytes = 64ull << 20;  // this core's share of the node's
  uint32_t requests = 4096;             // request contexts of this core
};

// A facility that makes requests of its own (the virtualization facility
// splits one into pieces) names the contexts it needs reserved so that it
// always makes progress; the front end gets the rest.
struct RequestReserve {
  std::string facility;
  uint32_t contexts = 0;
};

class CoreIo {
 public:
  static Result<std::unique_ptr<CoreIo>> create(unsigned index, const CoreIoConfig& config,
                                                const std::vector<RequestReserve>& reserves = {});
  ~CoreIo();

  unsigned index() const { return index_; }
  UringEngine& ring() { return *ring_; }
  BufferPool& buffers() { return *buffers_; }
  RequestPool& requests() { return *requests_; }
  PoolAccount& frontend_buffers() { return *frontend_buffers_; }
  PoolAccount& frontend_requests() { return *frontend_requests_; }
  // The account of a facility named in `reserves`, or null.
  PoolAccount* facility_requests(const std::string& facility);
  const std::vector<std::unique_ptr<PoolAccount>>& facility_accounts() const {
    return facility_requests_;
  }

  // Completions that happened inside a submit, run by the reactor between
  // events (io/protocol.hpp).
  CompletionQueue& completions() { return completions_; }

  // The core whose reactor runs on this thread, or null. Setting it also
  // makes its completion queue this thread's.
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
  std::vector<std::unique_ptr<PoolAccount>> facility_requests_;
  CompletionQueue completions_;  // last: its requests go back to the pools first
};

}  // namespace sve

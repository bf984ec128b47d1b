#pragma once
// One core's buffer memory: a region of pages mapped and faulted in at
// start-up (registered with the core's io_uring ring as fixed buffer 0), a
// buddy allocator over it, and the descriptors of the buffers cut from it.
// Who may take pages is decided by the account tree under root(), counted in
// pages; nothing here touches the general heap after construction.
//
// Single-threaded: it belongs to one core.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>

#include <boost/intrusive/slist.hpp>

#include "io/buffer/buffer.hpp"
#include "io/buffer/page_allocator.hpp"
#include "io/pool/pool_account.hpp"
#include "util/result.hpp"

namespace sve {

class BufferPool {
 public:
  // `max_buffers`: how many buffers may exist at once (each host request
  // holds at most one, so the core's request contexts bound it).
  static Result<std::unique_ptr<BufferPool>> create(std::string name, uint64_t bytes,
                                                    size_t max_buffers = 4096);
  ~BufferPool();

  static uint64_t pages_for(uint64_t bytes) {
    return bytes == 0 ? 1 : (bytes + PageAllocator::kPageBytes - 1) / PageAllocator::kPageBytes;
  }

  PoolAccount& root() { return root_; }
  // The whole region, for io_uring_register_buffers; `index` is the fixed
  // buffer slot it was registered as.
  iovec region() const { return {base_, bytes_}; }
  void set_fixed_index(int index) { fixed_index_ = index; }

  // Cuts a buffer of `bytes` from pages already granted to `account`
  // (pages_for(bytes) of them). Returns null, changing nothing, when the
  // free pages are too fragmented to make it from kMaxSegments runs, or all
  // descriptors are in use; the caller waits for frees either way.
  BufferRef build(PoolAccount& account, uint64_t bytes);

  uint64_t free_pages() const { return pages_.free_pages(); }
  uint64_t total_pages() const { return pages_.total_pages(); }

 private:
  friend class Buffer;
  BufferPool(std::string name, char* base, size_t bytes, size_t max_buffers);
  void recycle(Buffer* b);

  char* base_;
  size_t bytes_;
  int fixed_index_ = -1;
  PageAllocator pages_;
  PoolAccount root_;
  std::unique_ptr<Buffer[]> descriptors_;
  size_t descriptor_count_;
  boost::intrusive::slist<Buffer> free_descriptors_;
};

}  // namespace sve

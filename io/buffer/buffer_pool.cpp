#include "io/buffer/buffer_pool.hpp"

#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <cstring>

namespace sve {

Result<std::unique_ptr<BufferPool>> BufferPool::create(std::string name, uint64_t bytes,
                                                      size_t max_buffers) {
  bytes = pages_for(bytes) * PageAllocator::kPageBytes;
  // Faulted in now (MAP_POPULATE), so the I/O path never takes a page fault
  // for it and resident memory is what was configured from the start.
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED)
    return make_error("buffer pool " + name + ": cannot map " + std::to_string(bytes) +
                          " bytes: " + std::strerror(errno),
                      errno);
  return std::unique_ptr<BufferPool>(
      new BufferPool(std::move(name), static_cast<char*>(mem), bytes, max_buffers));
}

BufferPool::BufferPool(std::string name, char* base, size_t bytes, size_t max_buffers)
    : base_(base),
      bytes_(bytes),
      pages_(base, bytes / PageAllocator::kPageBytes),
      root_(std::move(name), bytes / PageAllocator::kPageBytes),
      descriptors_(new Buffer[max_buffers]),
      descriptor_count_(max_buffers) {
  for (size_t i = descriptor_count_; i-- > 0;) {
    descriptors_[i].pool_ = this;
    free_descriptors_.push_front(descriptors_[i]);
  }
}

BufferPool::~BufferPool() {
  free_descriptors_.clear();
  ::munmap(base_, bytes_);
}

BufferRef BufferPool::build(PoolAccount& account, uint64_t bytes) {
  if (free_descriptors_.empty()) return nullptr;
  Buffer& b = free_descriptors_.front();
  uint64_t pages = pages_for(bytes);
  uint64_t left = pages;
  unsigned n = 0;
  while (left > 0) {
    // The largest run that is not larger than what is left, or smaller ones
    // when the allocator has none that large.
    unsigned order = 0;
    while (order < PageAllocator::kMaxOrder && (uint64_t{2} << order) <= left) ++order;
    char* run = nullptr;
    for (int o = static_cast<int>(order); o >= 0 && !run; --o) {
      run = pages_.allocate(static_cast<unsigned>(o));
      if (run) order = static_cast<unsigned>(o);
    }
    if (!run || n == Buffer::kMaxSegments) {
      if (run) pages_.free(run, order);
      for (unsigned i = 0; i < n; ++i) pages_.free(b.segment_[i].data, b.segment_[i].order);
      return nullptr;
    }
    uint64_t run_pages = uint64_t{1} << order;
    b.segment_[n++] = {run, static_cast<uint32_t>(run_pages * PageAllocator::kPageBytes),
                       static_cast<uint8_t>(order)};
    left -= run_pages;
  }
  free_descriptors_.pop_front();
  b.size_ = bytes;
  b.segments_ = n;
  b.fixed_index_ = fixed_index_;
  b.account_ = &account;
  b.pages_ = pages;
  return BufferRef(&b);
}

void BufferPool::recycle(Buffer* b) {
  for (unsigned i = 0; i < b->segments_; ++i)
    pages_.free(b->segment_[i].data, b->segment_[i].order);
  PoolAccount* account = b->account_;
  uint64_t pages = b->pages_;
  b->segments_ = 0;
  b->account_ = nullptr;
  free_descriptors_.push_front(*b);
  account->release(pages);  // may hand the pages to a waiter at once
}

}  // namespace sve

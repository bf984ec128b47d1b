#pragma once
// A buddy allocator of 4 KiB pages over one memory region: hands out
// contiguous runs of 2^order pages (order 0..kMaxOrder, 4 KiB..1 MiB) and
// merges freed runs with their buddies. Its bookkeeping lives in a side
// array, never in the pages themselves, so free pages stay untouched.
//
// Single-threaded: one allocator per core's buffer pool.
#include <cstddef>
#include <cstdint>
#include <memory>

#include <boost/intrusive/list.hpp>

namespace sve {

class PageAllocator {
 public:
  static constexpr uint32_t kPageBytes = 4096;
  static constexpr unsigned kMaxOrder = 8;  // 256 pages = 1 MiB

  PageAllocator(char* base, size_t pages);
  ~PageAllocator();
  PageAllocator(const PageAllocator&) = delete;
  PageAllocator& operator=(const PageAllocator&) = delete;

  // A run of 2^order pages, or nullptr if no free run is large enough.
  char* allocate(unsigned order);
  void free(char* run, unsigned order);

  size_t total_pages() const { return pages_; }
  size_t free_pages() const { return free_pages_; }
  // The largest order with a free run, or -1 when nothing is free.
  int largest_free_order() const;

 private:
  struct PageMeta : boost::intrusive::list_base_hook<> {
    uint8_t order = 0;
    bool free_head = false;  // first page of a free run of this order
  };
  size_t index_of(const char* p) const { return static_cast<size_t>(p - base_) / kPageBytes; }
  void push_free(size_t index, unsigned order);

  char* base_;
  size_t pages_;
  size_t free_pages_ = 0;
  std::unique_ptr<PageMeta[]> meta_;
  boost::intrusive::list<PageMeta> free_[kMaxOrder + 1];
};

}  // namespace sve

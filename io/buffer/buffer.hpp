#pragma once
// Host data from socket to disk lives in one reference-counted, page-aligned
// buffer. Facilities pass it on by reference (BufferRef); a request that is
// split across extents points its pieces into the same buffer at different
// offsets, so no layer copies payload bytes.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include <boost/intrusive_ptr.hpp>

namespace sve {

class Buffer {
 public:
  static constexpr size_t kAlignment = 4096;

  // Page-aligned storage of at least `bytes` (rounded up to a page).
  static boost::intrusive_ptr<Buffer> allocate(size_t bytes);

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t capacity() const { return capacity_; }

  friend void intrusive_ptr_add_ref(Buffer* b) {
    b->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(Buffer* b) {
    if (b->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(b);
  }
  uint32_t use_count() const { return refs_.load(std::memory_order_relaxed); }

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

 private:
  Buffer(char* data, size_t capacity) : data_(data), capacity_(capacity) {}
  ~Buffer() = default;
  static void destroy(Buffer* b);

  std::atomic<uint32_t> refs_{0};
  char* data_;
  size_t capacity_;
};

using BufferRef = boost::intrusive_ptr<Buffer>;

}  // namespace sve

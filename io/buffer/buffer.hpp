#pragma once
// Host data from socket to disk lives in one reference-counted buffer.
// Facilities pass it on by reference (BufferRef); a request split across
// extents points its pieces into the same buffer at different offsets. The
// path itself copies no payload bytes: the socket receives into the buffer,
// the disk reads and writes it, the reply is sent from it. The one facility
// that keeps data beyond a request, the cache, copies it into its own
// blocks (its memory must outlive the host's buffer and be non-volatile).
//
// A buffer is a list of segments (scatter-gather). On the I/O path buffers
// come from a core's BufferPool: runs of pages in memory registered with
// that core's io_uring ring. Buffer::allocate makes a stand-alone buffer from
// the heap, for tests and the configuration path only.
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <boost/intrusive/slist_hook.hpp>
#include <boost/intrusive_ptr.hpp>

namespace sve {

class BufferPool;
class PoolAccount;

struct BufferSegment {
  char* data = nullptr;
  uint32_t length = 0;  // bytes of the segment
  uint8_t order = 0;    // page run order, for giving it back
};

// Payload bytes copied in this process. The stack itself copies none; the
// one copy is a memory mdisk's own work (its "DMA"), counted here so a test
// can hold the whole path to exactly one copy per byte moved.
struct PayloadCopies {
  static std::atomic<uint64_t> device_bytes;
};

class Buffer : public boost::intrusive::slist_base_hook<> {
 public:
  static constexpr size_t kAlignment = 4096;
  static constexpr unsigned kMaxSegments = 64;

  // A stand-alone, page-aligned, single-segment buffer from the heap.
  static boost::intrusive_ptr<Buffer> allocate(size_t bytes);
  // A buffer over memory its owner keeps (the cache's blocks, destaged
  // straight from where they live): `n` segments, at most kMaxSegments.
  // The memory must outlive the buffer; it is not freed with it.
  static boost::intrusive_ptr<Buffer> borrow(const iovec* segments, unsigned n);

  uint64_t size() const { return size_; }
  unsigned segment_count() const { return segments_; }
  const BufferSegment& segment(unsigned i) const { return segment_[i]; }
  // Index of the io_uring fixed buffer the memory is registered as, or -1.
  int fixed_index() const { return fixed_index_; }

  // The memory of [offset, offset + length) if it lies in one segment.
  char* contiguous(uint64_t offset, uint64_t length) const;
  // Fills `out` with the segments covering [offset, offset + length);
  // returns how many (at most `max`), or -1 if more were needed.
  int slice(uint64_t offset, uint64_t length, iovec* out, int max) const;
  // Copies [offset, offset + length) out to / in from flat memory, across
  // segments: for a facility that keeps its own copy (the cache's blocks).
  void copy_out(uint64_t offset, uint64_t length, void* to) const;
  void copy_in(uint64_t offset, uint64_t length, const void* from);
  // The only single-segment accessor; asserts there is one segment.
  char* data() const;

  friend void intrusive_ptr_add_ref(Buffer* b) {
    b->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(Buffer* b) {
    if (b->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) b->recycle();
  }
  uint32_t use_count() const { return refs_.load(std::memory_order_relaxed); }

  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

 private:
  friend class BufferPool;
  void recycle();

  std::atomic<uint32_t> refs_{0};
  uint64_t size_ = 0;
  unsigned segments_ = 0;
  int fixed_index_ = -1;
  bool borrowed_ = false;           // the memory is not ours to free
  BufferPool* pool_ = nullptr;      // null: stand-alone heap buffer
  PoolAccount* account_ = nullptr;  // charged with the pages
  uint64_t pages_ = 0;
  BufferSegment segment_[kMaxSegments];
};

using BufferRef = boost::intrusive_ptr<Buffer>;

}  // namespace sve

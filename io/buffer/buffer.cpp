#include "io/buffer/buffer.hpp"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <new>

#include "io/buffer/buffer_pool.hpp"

namespace sve {

std::atomic<uint64_t> PayloadCopies::device_bytes{0};

BufferRef Buffer::allocate(size_t bytes) {
  size_t capacity = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (capacity == 0) capacity = kAlignment;
  void* mem = nullptr;
  if (posix_memalign(&mem, kAlignment, capacity) != 0) throw std::bad_alloc();
  auto* b = new Buffer();
  b->size_ = bytes;
  b->segments_ = 1;
  b->segment_[0] = {static_cast<char*>(mem), static_cast<uint32_t>(capacity), 0};
  return BufferRef(b);
}

BufferRef Buffer::borrow(const iovec* segments, unsigned n) {
  assert(n > 0 && n <= kMaxSegments);
  auto* b = new Buffer();
  b->borrowed_ = true;
  b->segments_ = n;
  for (unsigned i = 0; i < n; ++i) {
    b->segment_[i] = {static_cast<char*>(segments[i].iov_base),
                      static_cast<uint32_t>(segments[i].iov_len), 0};
    b->size_ += segments[i].iov_len;
  }
  return BufferRef(b);
}

void Buffer::recycle() {
  if (pool_) {
    pool_->recycle(this);
    return;
  }
  if (!borrowed_) std::free(segment_[0].data);
  delete this;
}

char* Buffer::data() const {
  assert(segments_ == 1);
  return segment_[0].data;
}

char* Buffer::contiguous(uint64_t offset, uint64_t length) const {
  for (unsigned i = 0; i < segments_; ++i) {
    const BufferSegment& s = segment_[i];
    if (offset < s.length) return offset + length <= s.length ? s.data + offset : nullptr;
    offset -= s.length;
  }
  return length == 0 && segments_ ? segment_[segments_ - 1].data + segment_[segments_ - 1].length
                                  : nullptr;
}

int Buffer::slice(uint64_t offset, uint64_t length, iovec* out, int max) const {
  int n = 0;
  for (unsigned i = 0; i < segments_ && length > 0; ++i) {
    const BufferSegment& s = segment_[i];
    if (offset >= s.length) {
      offset -= s.length;
      continue;
    }
    if (n == max) return -1;
    uint64_t take = std::min<uint64_t>(s.length - offset, length);
    out[n++] = {s.data + offset, static_cast<size_t>(take)};
    length -= take;
    offset = 0;
  }
  return n;
}

// Calls fn(segment bytes, count) for each piece of [offset, offset + length).
template <class Fn>
static void for_each_piece(const BufferSegment* segments, unsigned n, uint64_t offset,
                           uint64_t length, Fn fn) {
  for (unsigned i = 0; i < n && length > 0; ++i) {
    const BufferSegment& s = segments[i];
    if (offset >= s.length) {
      offset -= s.length;
      continue;
    }
    uint64_t take = std::min<uint64_t>(s.length - offset, length);
    fn(s.data + offset, take);
    length -= take;
    offset = 0;
  }
  assert(length == 0);
}

void Buffer::copy_out(uint64_t offset, uint64_t length, void* to) const {
  auto* out = static_cast<char*>(to);
  for_each_piece(segment_, segments_, offset, length, [&](char* p, uint64_t n) {
    std::memcpy(out, p, n);
    out += n;
  });
}

void Buffer::copy_in(uint64_t offset, uint64_t length, const void* from) {
  const auto* in = static_cast<const char*>(from);
  for_each_piece(segment_, segments_, offset, length, [&](char* p, uint64_t n) {
    std::memcpy(p, in, n);
    in += n;
  });
}

}  // namespace sve

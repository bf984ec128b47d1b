#include "io/buffer/buffer.hpp"

#include <cstdlib>
#include <new>

namespace sve {

BufferRef Buffer::allocate(size_t bytes) {
  size_t capacity = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (capacity == 0) capacity = kAlignment;
  void* mem = nullptr;
  if (posix_memalign(&mem, kAlignment, capacity) != 0) throw std::bad_alloc();
  return BufferRef(new Buffer(static_cast<char*>(mem), capacity));
}

void Buffer::destroy(Buffer* b) {
  std::free(b->data_);
  delete b;
}

}  // namespace sve

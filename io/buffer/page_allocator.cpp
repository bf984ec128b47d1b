#include "io/buffer/page_allocator.hpp"

#include <algorithm>
#include <cassert>

namespace sve {

PageAllocator::PageAllocator(char* base, size_t pages)
    : base_(base), pages_(pages), meta_(new PageMeta[pages]) {
  // Cover the region with the largest naturally aligned runs that fit.
  size_t index = 0;
  while (index < pages) {
    unsigned order = kMaxOrder;
    while (order > 0 && ((index & ((size_t{1} << order) - 1)) != 0 ||
                         index + (size_t{1} << order) > pages))
      --order;
    push_free(index, order);
    free_pages_ += size_t{1} << order;
    index += size_t{1} << order;
  }
}

PageAllocator::~PageAllocator() {
  for (auto& list : free_) list.clear();
}

void PageAllocator::push_free(size_t index, unsigned order) {
  PageMeta& m = meta_[index];
  m.order = static_cast<uint8_t>(order);
  m.free_head = true;
  free_[order].push_back(m);
}

int PageAllocator::largest_free_order() const {
  for (int order = kMaxOrder; order >= 0; --order)
    if (!free_[order].empty()) return order;
  return -1;
}

char* PageAllocator::allocate(unsigned order) {
  assert(order <= kMaxOrder);
  unsigned have = order;
  while (have <= kMaxOrder && free_[have].empty()) ++have;
  if (have > kMaxOrder) return nullptr;
  PageMeta& head = free_[have].front();
  free_[have].pop_front();
  head.free_head = false;
  size_t index = static_cast<size_t>(&head - meta_.get());
  while (have > order) {  // split, keeping the lower half
    --have;
    push_free(index + (size_t{1} << have), have);
  }
  meta_[index].order = static_cast<uint8_t>(order);
  free_pages_ -= size_t{1} << order;
  return base_ + index * kPageBytes;
}

void PageAllocator::free(char* run, unsigned order) {
  size_t index = index_of(run);
  assert(index < pages_ && !meta_[index].free_head);
  free_pages_ += size_t{1} << order;
  while (order < kMaxOrder) {
    size_t buddy = index ^ (size_t{1} << order);
    if (buddy + (size_t{1} << order) > pages_) break;
    PageMeta& b = meta_[buddy];
    if (!b.free_head || b.order != order) break;
    free_[order].erase(free_[order].iterator_to(b));
    b.free_head = false;
    index = std::min(index, buddy);
    ++order;
  }
  push_free(index, order);
}

}  // namespace sve

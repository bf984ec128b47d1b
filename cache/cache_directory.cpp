#include "cache/cache_directory.hpp"

#include <algorithm>
#include <cassert>

namespace sve {

namespace {

struct KeyLess {
  bool operator()(const std::pair<uint32_t, uint64_t>& k, const CacheBlock& b) const {
    return k.first != b.vdisk ? k.first < b.vdisk : k.second < b.block;
  }
  bool operator()(const CacheBlock& b, const std::pair<uint32_t, uint64_t>& k) const {
    return b.vdisk != k.first ? b.vdisk < k.first : b.block < k.second;
  }
};

}  // namespace

namespace {

// Buckets for the hash index: a power of two, at least the capacity.
size_t bucket_count(uint32_t capacity) {
  size_t n = 16;
  while (n < capacity) n *= 2;
  return n;
}

}  // namespace

CacheDirectory::CacheDirectory(uint32_t capacity_blocks)
    : blocks_(capacity_blocks),
      arena_(new uint8_t[size_t{capacity_blocks} * kCacheBlockBytes]),
      buckets_(new HashIndex::bucket_type[bucket_count(capacity_blocks)]),
      hash_(HashIndex::bucket_traits(buckets_.get(), bucket_count(capacity_blocks))) {
  counts_.capacity = capacity_blocks;
  free_.reserve(capacity_blocks);
  for (uint32_t i = capacity_blocks; i-- > 0;) {
    blocks_[i].index = i;
    free_.push_back(&blocks_[i]);
  }
}

CacheDirectory::~CacheDirectory() {
  // The intrusive containers must let go before the blocks do.
  dirty_.clear();
  lru_.clear();
  hash_.clear();
  index_.clear();
}

CacheBlock* CacheDirectory::indexed(uint32_t vdisk, uint64_t block) {
  auto it = hash_.find(std::make_pair(vdisk, block), BlockHash(), BlockEqual());
  return it == hash_.end() ? nullptr : &*it;
}

void CacheDirectory::index(CacheBlock& b) {
  index_.insert(b);
  hash_.insert(b);
}

void CacheDirectory::unindex(CacheBlock& b) {
  hash_.erase(hash_.iterator_to(b));
  index_.erase(index_.iterator_to(b));
}

CacheBlock* CacheDirectory::lookup(uint32_t vdisk, uint64_t block) {
  CacheBlock* b = find(vdisk, block);
  ++(b ? counts_.hits : counts_.misses);
  return b;
}

CacheBlock* CacheDirectory::find(uint32_t vdisk, uint64_t block) {
  CacheBlock* b = indexed(vdisk, block);
  if (b && b->state == CacheBlock::State::clean) lru_.splice(lru_.end(), lru_, lru_.iterator_to(*b));
  return b;
}

std::vector<CacheBlock*> CacheDirectory::blocks_of(uint32_t vdisk) {
  std::vector<CacheBlock*> out;
  for (auto it = index_.lower_bound(std::make_pair(vdisk, uint64_t{0}), KeyLess());
       it != index_.end() && it->vdisk == vdisk; ++it)
    out.push_back(&*it);
  return out;
}

void CacheDirectory::discard_clean(uint32_t vdisk, uint64_t first, uint64_t last) {
  auto it = index_.lower_bound(std::make_pair(vdisk, first), KeyLess());
  while (it != index_.end() && it->vdisk == vdisk && it->block <= last) {
    CacheBlock& b = *it++;
    if (b.state == CacheBlock::State::clean) free_block(b);
  }
}

CacheBlock* CacheDirectory::take_free_block() {
  if (free_.empty()) {
    if (lru_.empty()) return nullptr;  // all dirty: nothing may be evicted
    CacheBlock& victim = lru_.front();
    ++counts_.evictions;
    free_block(victim);
  }
  CacheBlock* b = free_.back();
  free_.pop_back();
  return b;
}

void CacheDirectory::free_block(CacheBlock& b) {
  assert(b.state == CacheBlock::State::clean);
  if (on_free_) on_free_(b);
  lru_.erase(lru_.iterator_to(b));
  unindex(b);
  --counts_.clean;
  b.state = CacheBlock::State::free;
  free_.push_back(&b);
}

uint32_t CacheDirectory::evict_clean_if(uint32_t n,
                                        const std::function<bool(const CacheBlock&)>& pick) {
  uint32_t freed = 0;
  for (auto it = lru_.begin(); it != lru_.end() && freed < n;) {
    CacheBlock& b = *it++;
    if (!pick(b)) continue;
    ++counts_.evictions;
    free_block(b);
    ++freed;
  }
  return freed;
}

CacheBlock* CacheDirectory::insert_clean(uint32_t vdisk, uint64_t block) {
  if (CacheBlock* cached = indexed(vdisk, block)) return cached;  // meanwhile (perhaps dirtier)
  CacheBlock* b = take_free_block();
  if (!b) return nullptr;
  b->vdisk = vdisk;
  b->block = block;
  b->state = CacheBlock::State::clean;
  index(*b);
  lru_.push_back(*b);
  ++counts_.clean;
  return b;
}

void CacheDirectory::make_dirty(CacheBlock& b) {
  ++b.seq;
  switch (b.state) {
    case CacheBlock::State::clean:
      lru_.erase(lru_.iterator_to(b));
      --counts_.clean;
      [[fallthrough]];
    case CacheBlock::State::free:
      b.state = CacheBlock::State::dirty;
      b.dirtied_ms = now_ms_;
      dirty_.push_back(b);
      ++counts_.dirty;
      break;
    case CacheBlock::State::dirty:      // keeps its age: the oldest write counts
    case CacheBlock::State::destaging:  // dirty again once this destage is done
      break;
  }
}

CacheBlock* CacheDirectory::write(uint32_t vdisk, uint64_t block) {
  if (CacheBlock* cached = indexed(vdisk, block)) {
    make_dirty(*cached);
    return cached;
  }
  CacheBlock* b = take_free_block();
  if (!b) {
    ++counts_.write_waits;
    return nullptr;
  }
  b->vdisk = vdisk;
  b->block = block;
  b->state = CacheBlock::State::free;
  index(*b);
  make_dirty(*b);
  return b;
}

DestageRun CacheDirectory::next_destage(uint32_t max_blocks) {
  DestageRun run;
  if (dirty_.empty() || max_blocks == 0) return run;
  CacheBlock* oldest = &dirty_.front();
  auto is_dirty = [](const CacheBlock& b) { return b.state == CacheBlock::State::dirty; };
  // Grow backwards, then forwards, over adjacent dirty blocks of the vdisk.
  auto first = index_.iterator_to(*oldest);
  uint32_t taken = 1;
  while (taken < max_blocks && first != index_.begin()) {
    auto prev = std::prev(first);
    if (prev->vdisk != oldest->vdisk || prev->block + 1 != first->block || !is_dirty(*prev))
      break;
    first = prev;
    ++taken;
  }
  auto last = index_.iterator_to(*oldest);
  while (taken < max_blocks) {
    auto next = std::next(last);
    if (next == index_.end() || next->vdisk != oldest->vdisk ||
        next->block != last->block + 1 || !is_dirty(*next))
      break;
    last = next;
    ++taken;
  }
  run.vdisk = oldest->vdisk;
  run.first_block = first->block;
  for (auto it = first;; ++it) {
    CacheBlock& b = *it;
    dirty_.erase(dirty_.iterator_to(b));
    --counts_.dirty;
    b.state = CacheBlock::State::destaging;
    ++counts_.destaging;
    run.blocks.push_back(&b);
    run.seq_at_start.push_back(b.seq);
    if (it == last) break;
  }
  return run;
}

void CacheDirectory::destage_done(const DestageRun& run, bool ok) {
  for (size_t i = 0; i < run.blocks.size(); ++i) {
    CacheBlock& b = *run.blocks[i];
    assert(b.state == CacheBlock::State::destaging);
    --counts_.destaging;
    if (ok && b.seq == run.seq_at_start[i]) {
      b.state = CacheBlock::State::clean;
      lru_.push_back(b);
      ++counts_.clean;
    } else {  // rewritten meanwhile, or the back end failed: still dirty
      b.state = CacheBlock::State::dirty;
      b.dirtied_ms = now_ms_;
      dirty_.push_back(b);
      ++counts_.dirty;
    }
  }
}

void CacheDirectory::drop(uint32_t vdisk, bool force) {
  auto it = index_.lower_bound(std::make_pair(vdisk, uint64_t{0}), KeyLess());
  while (it != index_.end() && it->vdisk == vdisk) {
    CacheBlock& b = *it++;
    if (b.state == CacheBlock::State::clean) {
      free_block(b);
    } else if (b.state == CacheBlock::State::dirty && force) {
      if (on_free_) on_free_(b);
      dirty_.erase(dirty_.iterator_to(b));
      --counts_.dirty;
      unindex(b);
      b.state = CacheBlock::State::free;
      free_.push_back(&b);
    }
  }
}

uint64_t CacheDirectory::oldest_dirty_age_ms() const {
  if (dirty_.empty()) return 0;
  uint64_t at = dirty_.front().dirtied_ms;
  return now_ms_ > at ? now_ms_ - at : 0;
}

unsigned destage_concurrency(const CacheCounts& c, unsigned max_in_flight,
                             uint64_t oldest_dirty_age_ms, uint64_t delay_ms) {
  if (c.dirty == 0 || c.capacity == 0 || max_in_flight == 0) return 0;
  double full = static_cast<double>(c.dirty + c.destaging) / c.capacity;
  if (full < 0.25 && oldest_dirty_age_ms < delay_ms) return 0;
  if (full < 0.25) return 1;
  if (full >= 0.75) return max_in_flight;
  // Linear between a quarter and three quarters full.
  double share = (full - 0.25) / 0.5;
  return std::max(1u, static_cast<unsigned>(share * max_in_flight + 0.5));
}

}  // namespace sve

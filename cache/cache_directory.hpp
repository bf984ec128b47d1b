#pragma once
// The fast-write cache's directory of one cache partition: which blocks of
// which vdisks it holds, their data, and their state.
//
//   clean      a copy of what the back end holds; evictable, least recently
//              used first
//   dirty      written by a host, not yet on the back end; never evicted
//   destaging  being written to the back end; a host write meanwhile makes
//              it dirty again when that destage completes
//
// Blocks are kept in (vdisk, block) order, so destage finds adjacent dirty
// blocks to coalesce into one back-end write; every request looks its
// blocks up in a hash index beside it. Everything is preallocated
// (blocks, their data, the index's nodes): nothing is allocated per I/O.
// Not thread-safe: one cache partition belongs to one core.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>
#include <boost/intrusive/unordered_set.hpp>

namespace sve {

inline constexpr uint32_t kCacheBlockBytes = 4096;

struct LruTag;
struct DirtyTag;
struct HashTag;

struct CacheBlock
    : boost::intrusive::set_base_hook<>,
      boost::intrusive::unordered_set_base_hook<boost::intrusive::tag<HashTag>>,
      boost::intrusive::list_base_hook<boost::intrusive::tag<LruTag>>,
      boost::intrusive::list_base_hook<boost::intrusive::tag<DirtyTag>> {
  enum class State : uint8_t { free, clean, dirty, destaging };
  uint32_t vdisk = 0;
  uint64_t block = 0;  // index of the 4 KiB block in the vdisk
  State state = State::free;
  uint64_t seq = 0;    // bumped by every host write
  uint64_t dirtied_ms = 0;  // when it last became dirty (CacheDirectory::set_now)
  uint32_t index = 0;  // where its data lives
  friend bool operator<(const CacheBlock& a, const CacheBlock& b) {
    return a.vdisk != b.vdisk ? a.vdisk < b.vdisk : a.block < b.block;
  }
};

// Dirty blocks that one back-end write destages: adjacent, in one vdisk.
struct DestageRun {
  uint32_t vdisk = 0;
  uint64_t first_block = 0;
  std::vector<CacheBlock*> blocks;      // in block order
  std::vector<uint64_t> seq_at_start;   // each block's seq when the run began
};

struct CacheCounts {
  uint32_t capacity = 0, clean = 0, dirty = 0, destaging = 0;
  uint64_t hits = 0, misses = 0, evictions = 0, write_waits = 0;
};

class CacheDirectory {
 public:
  explicit CacheDirectory(uint32_t capacity_blocks);
  ~CacheDirectory();

  // The block if cached (any state); a hit or a miss is counted.
  CacheBlock* lookup(uint32_t vdisk, uint64_t block);
  // The same without counting (the caller counts per request); a clean
  // block found becomes the most recently used.
  CacheBlock* find(uint32_t vdisk, uint64_t block);
  // Whether `n` blocks not cached yet could be taken now (free, or clean
  // and evictable).
  bool can_take(uint32_t n) const { return free_.size() + lru_.size() >= n; }
  // Every cached block of `vdisk`, in block order.
  std::vector<CacheBlock*> blocks_of(uint32_t vdisk);
  // Forgets the clean copies of blocks [first, last] of `vdisk` (the back
  // end is about to change under them). Dirty blocks are left alone.
  void discard_clean(uint32_t vdisk, uint64_t first, uint64_t last);
  // Room for a clean copy of a block just read from the back end, evicting
  // the least recently used clean block if need be. Null when every block
  // is dirty or destaging (then nothing is cached; the read still succeeds).
  CacheBlock* insert_clean(uint32_t vdisk, uint64_t block);
  // A host write of a whole block: the block becomes dirty (a new seq).
  // Null when no block can be freed: the writer waits for destage (the
  // cache slows writers, it never fails them).
  CacheBlock* write(uint32_t vdisk, uint64_t block);
  uint8_t* data(const CacheBlock& b) { return arena_.get() + size_t{b.index} * kCacheBlockBytes; }
  // Called for each block this directory frees (evicted, discarded,
  // dropped) before it is reused: whoever keeps the block's data elsewhere
  // (the cache facility, in a non-volatile slot) lets go of it.
  void on_free(std::function<void(CacheBlock&)> hook) { on_free_ = std::move(hook); }
  // Frees up to `n` clean blocks that `pick` chooses, least recently used
  // first; returns how many.
  uint32_t evict_clean_if(uint32_t n, const std::function<bool(const CacheBlock&)>& pick);

  // The next run to destage: the oldest dirty block and the dirty blocks
  // adjacent to it, up to `max_blocks`. Empty when nothing is dirty.
  DestageRun next_destage(uint32_t max_blocks);
  // The run reached the back end (or failed, `ok` false): blocks not
  // written meanwhile become clean; the others stay dirty.
  void destage_done(const DestageRun& run, bool ok);
  // Drops every block of `vdisk` (deleted, or moved away). Dirty blocks
  // must have been destaged first: they are dropped only with `force`;
  // blocks being destaged stay until their destage is done.
  void drop(uint32_t vdisk, bool force = false);

  const CacheCounts& counts() const { return counts_; }
  // The clock dirty blocks are stamped with, and the age of the oldest.
  void set_now(uint64_t now_ms) { now_ms_ = now_ms; }
  uint64_t oldest_dirty_age_ms() const;

 private:
  using Index = boost::intrusive::set<CacheBlock>;
  struct BlockHash {
    size_t operator()(const CacheBlock& b) const { return (*this)({b.vdisk, b.block}); }
    size_t operator()(const std::pair<uint32_t, uint64_t>& k) const {
      uint64_t x = k.second ^ (uint64_t{k.first} << 40);  // mixed: buckets are a power of two
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdULL;
      x ^= x >> 33;
      return static_cast<size_t>(x);
    }
  };
  struct BlockEqual {
    bool operator()(const CacheBlock& a, const CacheBlock& b) const {
      return a.vdisk == b.vdisk && a.block == b.block;
    }
    bool operator()(const std::pair<uint32_t, uint64_t>& k, const CacheBlock& b) const {
      return k.first == b.vdisk && k.second == b.block;
    }
  };
  using HashIndex = boost::intrusive::unordered_set<
      CacheBlock,
      boost::intrusive::base_hook<
          boost::intrusive::unordered_set_base_hook<boost::intrusive::tag<HashTag>>>,
      boost::intrusive::hash<BlockHash>, boost::intrusive::equal<BlockEqual>,
      boost::intrusive::power_2_buckets<true>, boost::intrusive::constant_time_size<false>>;
  using Lru = boost::intrusive::list<
      CacheBlock, boost::intrusive::base_hook<
                      boost::intrusive::list_base_hook<boost::intrusive::tag<LruTag>>>>;
  using DirtyList = boost::intrusive::list<
      CacheBlock, boost::intrusive::base_hook<
                      boost::intrusive::list_base_hook<boost::intrusive::tag<DirtyTag>>>>;

  CacheBlock* take_free_block();
  CacheBlock* indexed(uint32_t vdisk, uint64_t block);
  void index(CacheBlock& b);
  void unindex(CacheBlock& b);
  void make_dirty(CacheBlock& b);
  void free_block(CacheBlock& b);

  std::vector<CacheBlock> blocks_;
  std::unique_ptr<uint8_t[]> arena_;
  Index index_;
  std::unique_ptr<HashIndex::bucket_type[]> buckets_;
  HashIndex hash_;
  Lru lru_;           // clean blocks, least recently used first
  DirtyList dirty_;   // dirty blocks, oldest first
  std::vector<CacheBlock*> free_;
  CacheCounts counts_;
  uint64_t now_ms_ = 0;
  std::function<void(CacheBlock&)> on_free_;
};

// How many destage runs to keep in flight: none while less than a quarter
// is dirty and none of it is older than `delay_ms` (rewrites are absorbed,
// neighbours coalesce: a working set that fits is never written twice),
// one while the cache has room (host I/O comes first), more as it fills,
// all of them near full (so writers wait as little as possible).
inline constexpr uint64_t kDestageDelayMs = 1000;
unsigned destage_concurrency(const CacheCounts& counts, unsigned max_in_flight,
                             uint64_t oldest_dirty_age_ms = UINT64_MAX,
                             uint64_t delay_ms = kDestageDelayMs);

}  // namespace sve

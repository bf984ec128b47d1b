#pragma once
// What one cache partition reports of itself, summed over a node's
// partitions with += (node show, vdisk show): a typed map-reduce over the
// cores, in the spirit of Seastar's sharded::map_reduce, instead of summing
// JSON by key name.
#include <cstdint>
#include <string>

#include "cache/cache_directory.hpp"
#include "cache/cache_facility.hpp"

namespace sve {

inline CacheCounts& operator+=(CacheCounts& a, const CacheCounts& b) {
  a.capacity += b.capacity;
  a.clean += b.clean;
  a.dirty += b.dirty;
  a.destaging += b.destaging;
  a.hits += b.hits;
  a.misses += b.misses;
  a.evictions += b.evictions;
  a.write_waits += b.write_waits;
  return a;
}

inline CacheVdiskStats& operator+=(CacheVdiskStats& a, const CacheVdiskStats& b) {
  a.reads += b.reads;
  a.read_hits += b.read_hits;
  a.writes += b.writes;
  a.bytes_read += b.bytes_read;
  a.bytes_hit += b.bytes_hit;
  a.bytes_written += b.bytes_written;
  a.bytes_destaged += b.bytes_destaged;
  a.destage_rate += b.destage_rate;
  a.window_destaged += b.window_destaged;
  return a;
}

inline CachePartitionStats& operator+=(CachePartitionStats& a, const CachePartitionStats& b) {
  a.destaged_bytes += b.destaged_bytes;
  a.destage_runs += b.destage_runs;
  a.destage_errors += b.destage_errors;
  a.fills += b.fills;
  a.waits += b.waits;
  a.mirrored += b.mirrored;
  a.bytes_into_cache += b.bytes_into_cache;
  a.bytes_out_of_cache += b.bytes_out_of_cache;
  a.bytes_into_nvram += b.bytes_into_nvram;
  a.mirror_batches += b.mirror_batches;
  a.mirrored_by_reference += b.mirrored_by_reference;
  a.mirror_retries += b.mirror_retries;
  a.copies_held += b.copies_held;
  a.promoted += b.promoted;
  a.discarded += b.discarded;
  return a;
}

struct CacheReport {
  uint64_t capacity_bytes = 0;
  CacheCounts counts;
  CachePartitionStats stats;
  uint64_t destage_rate = 0;  // bytes per second, over the last second
  CacheVdiskStats io;         // of the vdisk asked about, or of all
  uint64_t vdisk_dirty_blocks = 0;
  // The vdisk's cache mode and why: only the partition that owns the vdisk
  // knows; a sum keeps the first partition's that does.
  std::string mode, why;

  CacheReport& operator+=(const CacheReport& b) {
    capacity_bytes += b.capacity_bytes;
    counts += b.counts;
    stats += b.stats;
    destage_rate += b.destage_rate;
    io += b.io;
    vdisk_dirty_blocks += b.vdisk_dirty_blocks;
    if (mode.empty()) {
      mode = b.mode;
      why = b.why;
    }
    return *this;
  }
};

// One partition's report, of everything or of one vdisk (whose mode only
// its owning partition gives: `owner`).
inline CacheReport report_of(const CacheFacility& cache, const uint32_t* vdisk, bool owner) {
  CacheReport r;
  r.capacity_bytes = cache.capacity_bytes();
  r.counts = cache.counts();
  r.stats = cache.stats();
  r.destage_rate = cache.destage_rate();
  if (vdisk) {
    if (owner) {
      r.mode = to_string(cache.mode(*vdisk));
      r.why = cache.mode_reason(*vdisk);
    }
    r.vdisk_dirty_blocks = cache.dirty_blocks(*vdisk);
    if (const CacheVdiskStats* io = cache.vdisk_stats(*vdisk)) r.io = *io;
  } else {
    r.io = cache.totals();
  }
  return r;
}

}  // namespace sve

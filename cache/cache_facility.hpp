#pragma once
// The cache facility of one cache partition: one core's share of the node's
// cache, for the vdisks whose requests that core serves. It sits between
// the front end and virtualization and speaks the I/O protocol both ways,
// so it knows neither neighbour's type.
//
// Reads are served from cache when every block they touch is cached, and
// otherwise read through, keeping the whole 4 KiB blocks they covered
// (least recently used clean blocks make room). Writes, in write-through
// mode, go to the back end before they complete; the cached copies of the
// blocks they touch are forgotten when the write starts and the blocks it
// covered whole are kept again when it succeeds.
//
// Coherence within the partition: a read miss or a write that overlapped
// another write while it was in flight keeps nothing, because its data may
// not be what the back end ends up holding. Coherence between partitions
// and nodes comes from ownership: every request for a vdisk reaches the
// one partition that owns it.
//
// Free of the actor runtime; not thread-safe (one core's thread runs both
// submit and the completions coming back from below).
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_directory.hpp"
#include "cache/cache_mode.hpp"
#include "cache/ownership.hpp"
#include "io/protocol.hpp"
#include "virt/virt_map.hpp"

namespace sve {

struct CacheVdiskStats {
  uint64_t reads = 0;
  uint64_t read_hits = 0;   // reads served entirely from cache
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_hit = 0;
  uint64_t bytes_written = 0;
};

class CacheFacility final : public IoClient {
 public:
  // `capacity_blocks` of 4 KiB; 0 turns the cache off (requests pass
  // straight through).
  CacheFacility(IoServer& lower, uint32_t capacity_blocks);
  ~CacheFacility() override;

  // A new configuration: the blocks of vdisks that are gone are dropped.
  void set_map(std::shared_ptr<const VirtMap> map);
  // Which vdisks this node owns and how each is cached. A vdisk that is not
  // cached here (another node owns it now, or its mode is off) loses its
  // clean blocks; until the first table, nothing is cached.
  void set_routes(std::shared_ptr<const RouteTable> routes);
  void submit(IoRequestPtr request);
  // A request coming back from below (this object intercepted it).
  void io_done(IoRequestPtr request) override;

  // How `vdisk` is cached on this node now, and why.
  CacheMode mode(uint32_t vdisk) const;
  std::string mode_reason(uint32_t vdisk) const;
  CacheCounts counts() const;
  uint64_t capacity_bytes() const;
  // Null if the vdisk has seen no I/O here.
  const CacheVdiskStats* vdisk_stats(uint32_t vdisk) const;
  size_t in_flight() const { return active_.size(); }

 private:
  // A request below us whose completion the cache must see.
  struct InFlight {
    uint32_t vdisk = 0;
    uint64_t first = 0, last = 0;  // blocks touched
    bool is_write = false;         // any request that changes the back end
    bool tainted = false;          // overlapped a write: keep nothing
    uint32_t active_pos = 0;       // index in active_
  };

  bool try_hit(IoRequest& request, uint64_t first, uint64_t last);
  void pass_down(IoRequestPtr request, uint64_t first, uint64_t last, bool is_write);
  // Taints every in-flight request overlapping [first, last] of `vdisk`
  // (for a new write), or reports whether a write overlaps (for a read).
  bool overlaps_write(uint32_t vdisk, uint64_t first, uint64_t last) const;
  void taint_overlapping(uint32_t vdisk, uint64_t first, uint64_t last);
  // Keeps the whole blocks a successful request carried.
  void keep_blocks(const IoRequest& request);
  uint32_t take_record();
  void release_record(uint32_t index);

  IoServer& lower_;
  std::unique_ptr<CacheDirectory> directory_;  // null: cache off
  std::shared_ptr<const VirtMap> map_;
  std::shared_ptr<const RouteTable> routes_;
  std::vector<InFlight> records_;
  std::vector<uint32_t> free_records_;
  std::vector<uint32_t> active_;  // records in flight
  std::unordered_map<uint32_t, CacheVdiskStats> vdisks_;
};

}  // namespace sve

#pragma once
// The cache facility of one cache partition: one core's share of the node's
// cache, for the vdisks whose requests that core serves (vdisk id modulo
// cores). It sits between the front end and virtualization and speaks the
// I/O protocol both ways, so it knows neither neighbour's type. How each
// vdisk is cached comes from the route table (model/ownership.hpp).
//
// Reads are served from cache when every block they touch is cached. A read
// that touches a dirty block but misses others first reads the missing
// blocks into the cache (a fill) and is then served whole from it; any other
// miss reads through and keeps the whole 4 KiB blocks it covered, unless
// it is 256 KiB or more (streaming: keeping it would cost a copy and evict
// what smaller requests reuse; write-through writes likewise).
//
// Write-through: a write goes to the back end before it completes. The
// cached copies of the blocks it touches are forgotten when it starts and
// the blocks it covered whole are kept when it succeeds. A write that
// touches a dirty block waits until that block is destaged (it would
// otherwise race the destage on the back end).
//
// Write-back: a write's blocks become dirty in the cache; each new version
// is copied from the host's buffer into a new slot of this node's
// non-volatile memory (then the old one is freed), which is the block's
// data from then on: served to reads, sent to the partner, destaged, and
// kept as the clean copy afterwards (until evicted). The write completes
// when the partner confirms its copy. Partial blocks are filled first. Dirty
// blocks are destaged in the background, oldest first, adjacent ones
// coalesced, more at once as the cache fills; then the partner is told to
// free its copies. A full cache makes writers wait, in order; it never
// fails them.
// A flush completes at once: every completed write already has two copies.
//
// The partner's copies of its own dirty blocks live here too, in the
// non-volatile memory only (store_mirror). When this node takes the
// partner's vdisks over, the copies that still count become its dirty
// blocks, destaged before anything newer is written through to those
// blocks. Copies that no longer count (the other node took over and
// destaged them) are freed, after a restart too.
//
// Coherence within the partition: a read miss or a fill that overlapped a
// write while in flight keeps nothing. Between partitions and nodes it
// comes from ownership: every request for a vdisk reaches one partition.
//
// Free of the actor runtime; not thread-safe (one core's thread runs
// submit, the completions coming back from below, and the partner's calls).
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <span>
#include <unordered_map>
#include <vector>

#include "cache/cache_directory.hpp"
#include "cache/held_copies.hpp"
#include "model/cache_mode.hpp"
#include "model/ownership.hpp"
#include "hw/nvram/nvram.hpp"
#include "facility/allocation_query.hpp"
#include "facility/facility.hpp"
#include "io/protocol.hpp"
#include "io/service_gate.hpp"
#include "model/virt_map.hpp"

namespace sve {

struct CacheVdiskStats {
  uint64_t reads = 0;
  uint64_t read_hits = 0;   // reads served entirely from cache
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_hit = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_destaged = 0;
  uint64_t destage_rate = 0;    // bytes per second, over the last second
  uint64_t window_destaged = 0;  // in the second now running
};

struct CachePartitionStats {
  uint64_t destaged_bytes = 0;
  uint64_t destage_runs = 0;
  uint64_t destage_errors = 0;
  uint64_t fills = 0;
  uint64_t waits = 0;        // requests that waited for room or for destage
  uint64_t mirrored = 0;     // blocks sent to the partner
  uint64_t mirror_batches = 0;  // messages they went in
  uint64_t mirrored_by_reference = 0;  // blocks the partner kept from data it forwarded here
  uint64_t mirror_retries = 0;
  uint64_t copies_held = 0;  // the partner's blocks held in non-volatile memory
  uint64_t promoted = 0;     // the partner's copies taken over as dirty blocks
  uint64_t discarded = 0;    // copies freed because they no longer count
  // Payload bytes this partition copied (docs/cache.md, "Copies"): into
  // its cache memory (write-through writes and reads kept, fills), out of
  // the cache (hits), and into non-volatile slots (its own written-back
  // writes, whose blocks live there, and the partner's copies). The copies
  // for the partner are sent from the slots.
  uint64_t bytes_into_cache = 0;
  uint64_t bytes_out_of_cache = 0;
  uint64_t bytes_into_nvram = 0;
};

// Copies of blocks of one vdisk, on their way to the partner.
struct MirrorBatch {
  uint32_t origin = 0;  // the node that wrote them
  uint32_t vdisk = 0;
  uint64_t epoch = 0;
  std::vector<uint64_t> blocks;  // block numbers
  std::vector<uint64_t> seqs;    // their versions
  std::vector<char> data;        // blocks.size() * 4 KiB, or empty when:
  // each block's data in this node's non-volatile slot of that version,
  // which stays put (pinned) while the batch lives: the data channel
  // sends it from there, with no copy.
  std::vector<const char*> block_data;
  std::vector<uint32_t> slots;
  // Not 0: the blocks of one write that the partner forwarded here as its
  // request `forward_id` and still holds; the link may send just the
  // numbers (the partner keeps its copy from that data). Cleared before a
  // resend, which carries the data.
  uint64_t forward_id = 0;
};

// The same batch with its data in `data` (gathered from the slots).
MirrorBatch gathered(const MirrorBatch& batch);

// The same copies as they arrived on the data channel, in its receive
// buffer (stored from there into NVRAM: the partner's one copy).
struct MirrorCopies {
  uint32_t origin = 0;
  uint32_t vdisk = 0;
  uint64_t epoch = 0;
  size_t count = 0;
  const uint64_t* blocks = nullptr;
  const uint64_t* seqs = nullptr;
  const char* data = nullptr;  // count * 4 KiB
};

// How copies reach the partner node. mirror() answers later, on this core,
// through CacheFacility::mirror_done(id, ok).
class MirrorLink {
 public:
  virtual ~MirrorLink() = default;
  virtual void mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) = 0;
  // The same, for a link that sends from the batch itself after the call
  // returns (it keeps the batch alive until then). A link that copies the
  // batch gets its data gathered.
  virtual void mirror_shared(uint32_t partner, std::shared_ptr<const MirrorBatch> batch,
                             uint64_t id) {
    if (batch->data.empty() && !batch->block_data.empty())
      mirror(partner, gathered(*batch), id);
    else
      mirror(partner, *batch, id);
  }
  // Its state, for the cache's inspect.
  virtual nlohmann::json inspect() const { return nlohmann::json::object(); }
  // The partner may free its copies of these blocks (up to these versions):
  // they are on the back end. Best effort.
  virtual void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
                       const std::vector<uint64_t>& seqs) = 0;
};

class CacheFacility final : public Facility {
 public:
  // `capacity_blocks` of 4 KiB; 0 turns the cache off (requests pass
  // straight through). `nvram` (with at least twice the capacity in slots)
  // and `mirror` make write-back possible; `self` is this node's id.
  CacheFacility(IoServer& lower, uint32_t capacity_blocks, Nvram* nvram = nullptr,
                MirrorLink* mirror = nullptr, uint32_t self = 0);
  ~CacheFacility() override;

  // In a cluster: while the gate is closed (no lease) nothing is destaged,
  // at once, before the route table says so: another node may own the
  // data by now.
  void set_gate(const ServiceGate* gate) { gate_ = gate; }
  // The thin layer below: a write to a thin vdisk is written back only if
  // every grain it touches is allocated (else it goes through, and the
  // thin layer allocates or answers ENOSPC before the host is answered).
  // Without one, writes to thin vdisks always go through.
  void set_allocation_query(const AllocationQuery* query) { allocation_ = query; }
  // A new configuration: the blocks of vdisks that are gone are dropped.
  void set_map(std::shared_ptr<const VirtMap> map);
  // Which vdisks this node owns and how each is cached. A vdisk not cached
  // here any more loses its clean blocks; copies that no longer count are
  // freed; the partner's copies of vdisks this node now owns become dirty
  // blocks. Until the first table, nothing is cached.
  void set_routes(std::shared_ptr<const RouteTable> routes);
  const char* kind() const override { return "cache"; }
  void set_view(const FacilityView& view) override {
    if (view.map) set_map(view.map);
    if (view.routes) set_routes(view.routes);
  }
  void submit(IoRequestPtr request) override;
  // A request coming back from below (this object intercepted it).
  void io_done(IoRequestPtr request) override;
  // The partner's answer to mirror().
  void mirror_done(uint64_t id, bool ok);
  // Called every few tens of milliseconds: resends what the partner did
  // not take, retries failed destages, keeps the destage rate.
  uint64_t tick_ms() const override { return 20; }
  void tick(uint64_t now_ms) override;
  nlohmann::json inspect() const override;

  // From now on, destage everything at once (the node is shutting down).
  void flush_all() {
    flushing_ = true;
    kick_destage();
    flush_releases();
  }
  uint64_t dirty_total() const {
    CacheCounts c = counts();
    return uint64_t{c.dirty} + c.destaging;
  }

  // The partner's side: keep copies of its blocks (0, or an errno:
  // ENOSPC when the non-volatile memory is full, ESTALE for an old epoch).
  // Whether the partner's copies may be taken now: this node holds a lease
  // and serves a route table (as the interconnect checks for its path).
  bool takes_copies() const {
    return (!gate_ || gate_->open()) && routes_ && routes_->serving;
  }
  int store_mirror(const MirrorBatch& batch);
  int store_mirror(const MirrorCopies& copies);
  // (From where the numbers lie: a release frame's body, a message's.)
  void release_mirror(uint32_t origin, uint32_t vdisk, std::span<const uint64_t> blocks,
                      std::span<const uint64_t> seqs);

  // How `vdisk` is cached on this node now, and why.
  CacheMode mode(uint32_t vdisk) const;
  std::string mode_reason(uint32_t vdisk) const;
  CacheCounts counts() const;
  uint64_t capacity_bytes() const;
  // Dirty blocks held for `vdisk` (destaging too, and copies still to take
  // over), and the same for the vdisks of I/O group `group`.
  uint64_t dirty_blocks(uint32_t vdisk) const;
  // The partner's copies of the vdisk's blocks this partition holds.
  uint64_t held_blocks(uint32_t vdisk) const;
  uint64_t dirty_blocks_of_group(uint32_t group) const;
  // Null if the vdisk has seen no I/O here.
  const CacheVdiskStats* vdisk_stats(uint32_t vdisk) const;
  // Every vdisk's counters added up.
  CacheVdiskStats totals() const;
  // Runs of adjacent dirty (or destaging) blocks, at most `max` of them.
  struct DirtyExtent {
    uint32_t vdisk = 0;
    uint64_t first_block = 0;
    uint64_t blocks = 0;
  };
  std::vector<DirtyExtent> dirty_extents(size_t max) const;
  const CachePartitionStats& stats() const { return stats_; }
  uint64_t destage_rate() const { return destage_rate_; }  // bytes per second
  size_t in_flight() const { return active_.size(); }

 private:
  enum class Kind : uint8_t { host_read, host_write, fill, destage };
  // A request below us whose completion the cache must see.
  struct InFlight {
    Kind kind = Kind::host_read;
    uint32_t vdisk = 0;
    uint64_t first = 0, last = 0;  // blocks touched
    bool tainted = false;          // overlapped a write: keep nothing
    uint32_t active_pos = 0;       // index in active_
    IoRequestPtr parent;           // a fill's host request
    DestageRun run;                // a destage's blocks
    std::vector<uint32_t> pinned;  // the slots a destage writes from
  };
  // Copies of one vdisk's blocks on their way to the partner, and the
  // writes that complete when it has them. While kMaxMirrorsInFlight are
  // unanswered, the next writes gather in one open batch (sent = false):
  // one message carries many copies.
  struct MirrorFlight {
    std::shared_ptr<MirrorBatch> batch;  // shared with a link still sending it
    std::vector<IoRequestPtr> requests;
    uint32_t partner = 0;
    bool sent = false;
    bool resend = false;
  };
  static constexpr unsigned kMaxMirrorsInFlight = 2;  // per vdisk
  // The most blocks one copy by reference names (the data channel's limit
  // per frame; a larger forwarded write sends its data).
  static constexpr uint32_t kMaxBlocksByReference = 1024;
  struct FillPending {
    uint32_t count = 0;
    int error = 0;
  };

  const VdiskRoute* route(uint32_t vdisk) const;
  bool has_dirty(uint32_t vdisk, uint64_t first, uint64_t last);
  bool try_hit(IoRequest& request, uint64_t first, uint64_t last);
  void read(IoRequestPtr request, uint64_t first, uint64_t last);
  void write_through(IoRequestPtr request, uint64_t first, uint64_t last);
  void write_back(IoRequestPtr request, const VdiskRoute& r, uint64_t first, uint64_t last);
  // Reads those of `blocks` that are not cached, then submits `request`
  // again; false (nothing started) if there are too many to fill now.
  bool fill(IoRequestPtr& request, const std::vector<uint64_t>& blocks);
  // Parks a request until destage makes progress; then it is submitted again.
  void stall(IoRequestPtr request);
  void pass_down(IoRequestPtr request, uint64_t first, uint64_t last, Kind kind);
  uint32_t track(Kind kind, uint32_t vdisk, uint64_t first, uint64_t last);
  bool overlaps_write(uint32_t vdisk, uint64_t first, uint64_t last) const;
  void taint_overlapping(uint32_t vdisk, uint64_t first, uint64_t last);
  void forget_clean(uint32_t vdisk);
  void keep_blocks(const IoRequest& request);
  void fill_done(uint32_t index, IoRequestPtr piece);
  void release_record(uint32_t index);
  // A block's data: in its non-volatile slot if it has one (written back),
  // else in the cache's memory.
  const uint8_t* block_data(const CacheBlock& block) const;
  // Where a clean block's data is to be copied in: the cache's memory (a
  // slot it kept goes).
  uint8_t* clean_data(CacheBlock& block);
  // Stores a new version of a dirty block in a new non-volatile slot: the
  // bytes [from, to) of the vdisk from `request`, the rest of the block
  // from its current data.
  void store_version(CacheBlock& block, const IoRequest& request, uint64_t from, uint64_t to,
                     uint64_t epoch);
  // Frees slots kept by clean blocks (outside [first, last] of `vdisk`)
  // until `want` are free, if it can.
  void shed_clean_slots(uint32_t want, uint32_t vdisk, uint64_t first, uint64_t last);
  void forget_slot(const CacheBlock& block);
  // Frees one of this node's own slots, or defers it while a batch pins it.
  void release_own_slot(uint32_t slot);
  void unpin(const std::vector<uint32_t>& slots);
  // A new batch whose slots are unpinned when the last holder lets go.
  std::shared_ptr<MirrorBatch> new_batch();
  void send_open_batch(uint32_t vdisk);
  void send_flight(uint32_t vdisk, uint64_t id);
  void settle_flight(std::unordered_map<uint64_t, MirrorFlight>::iterator it, int status,
                     bool drain);
  void flush_releases();
  void kick_destage();
  void destage_done(uint32_t index, bool ok);
  // Submits the waiting requests again, in order. Unless `all` (the route
  // table changed: each must be judged again), it stops at the first that
  // waits again for room: those behind it keep their turn rather than each
  // being tried, and waiting again, at every destage completion.
  void resume_stalled(bool all = false);
  void complete_drained();
  void reconcile_copies();
  void drop_vdisk(uint32_t vdisk);

  IoServer& lower_;
  const AllocationQuery* allocation_ = nullptr;
  std::unique_ptr<CacheDirectory> directory_;  // null: cache off
  Nvram* nvram_;
  MirrorLink* mirror_;
  uint32_t self_;
  const ServiceGate* gate_ = nullptr;
  std::shared_ptr<const VirtMap> map_;
  std::shared_ptr<const RouteTable> routes_;
  std::shared_ptr<const RouteTable> last_serving_;  // the last table with a lease
  std::vector<InFlight> records_;
  std::vector<uint32_t> free_records_;
  std::vector<uint32_t> active_;  // records in flight
  std::unordered_map<uint32_t, CacheVdiskStats> vdisks_;
  // Per cache block (by index): its non-volatile slot and version, if dirty.
  std::vector<uint32_t> block_slot_;
  std::vector<uint64_t> block_seq_;
  std::vector<uint64_t> block_epoch_;
  uint64_t next_seq_ = 1;
  uint64_t seq_reserved_ = 0;  // the NVRAM's sequence floor, as last set
  uint64_t take_seq();
  uint64_t next_mirror_id_ = 1;
  // Own slots a batch still sends from, and those freed meanwhile (freed
  // when the last batch lets go): declared before the flights, which
  // hold batches.
  std::vector<uint16_t> slot_pins_;
  std::vector<uint8_t> release_deferred_;
  bool destroying_ = false;
  bool slots_freed_ = false;  // by an unpin, since writers were last resumed
  std::unordered_map<uint64_t, MirrorFlight> mirror_waits_;
  std::unordered_map<uint32_t, uint64_t> open_batch_;        // vdisk -> flight not sent
  std::unordered_map<uint32_t, unsigned> mirrors_in_flight_;  // vdisk -> sent, unanswered
  // Releases for the partner, gathered: (partner, vdisk) -> blocks, versions.
  std::map<std::pair<uint32_t, uint32_t>,
           std::pair<std::vector<uint64_t>, std::vector<uint64_t>>> releases_;
  HeldCopies held_;
  std::set<uint32_t> unpromoted_;  // vdisks whose copies wait for room
  std::unordered_map<IoRequest*, FillPending> fills_pending_;
  std::deque<IoRequestPtr> stalled_;  // wait for destage progress
  bool room_stall_ = false;           // the last stall was for room (cache or NVRAM)
  std::vector<IoRequestPtr> drained_; // complete once nothing is dirty
  unsigned destages_ = 0;             // in flight
  bool destage_failed_ = false;       // retry on the next tick
  bool flushing_ = false;             // shutting down: destage all now
  CachePartitionStats stats_;
  uint64_t rate_window_start_ = 0, rate_window_bytes_ = 0, destage_rate_ = 0;
};

}  // namespace sve

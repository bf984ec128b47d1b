#pragma once
// The point-in-time copy facility (SVC's FlashCopy; docs/flashcopy.md):
// between the cache and thin provisioning. Once a mapping is copying, its
// target reads as its source was at the instant it started, while both stay
// writable:
//  - a write to a source grain not yet copied first copies the grain to the
//    target (read from the source, written to the target), then goes on;
//  - a target read of a grain not yet copied is read from the source;
//  - a target write to a grain not yet copied first copies the grain;
//  - the rest is copied in the background, at the mapping's copy rate.
// A grain being copied holds back every request that touches it (in either
// vdisk); a source write also waits for target reads of the grain that were
// sent to the source before it was copied.
//
// The instant: while a mapping is `starting`, writes to its source and
// target pause here and those already below drain; each core says so
// (events()) and the node commits `copying`. This core then holds the
// mapping's copied-grain bitmap, in memory, and on the back end in a hidden
// vdisk of the mapping (flashcopy_bitmap.cpp): a copied grain's bit is
// written there before any write may change that grain in source or target
// (such a write waits for a FUA write of the page; background copies' bits
// go at the next tick, without FUA). A facility that finds a copying mapping
// it did not pause itself (the process restarted, another node took the
// source over) reads the bitmap back, its requests waiting meanwhile, and
// the copy goes on; a grain copied whose bit was not durable yet is copied
// again, from a source nothing changed there since. A mapping whose bitmap
// cannot be read (or that has none) is reported lost and the node suspends
// it: its target goes offline, never silently wrong.
//
// An incremental mapping keeps, between its starts, which grains were
// copied and which changed since (on source or target, whatever its state:
// its target's writes are sent to its source's core for that). A restart
// then copies only the grains not copied or changed. That history is
// trusted only if this core kept it all along (it executed the source the
// whole time, and the start follows the one it describes); else the
// restart copies everything.
//
// Cascades and restores: mappings that share a vdisk are ordered by when
// they became copying; a later one reads through an earlier one (what its
// source read as when it started: grains that mapping has not copied come
// from that mapping's source, and so on). A host write has its grains
// copied first by the mapping that targets the vdisk and every mapping from
// it; a grain copy's write to its target, by the earlier mappings from that
// target (a restore changes its target under them). A stopping mapping
// first has every later mapping of its target copy the grains it read
// through it (cleaning, at the clean rate), their bits durable.
//
// Every mapping sharing a vdisk with others not idle lives on one core, its
// home (CopyLayout::home, the source's core for one alone): requests of its
// vdisks arriving elsewhere are sent there, and its I/O goes to each
// vdisk's core, through ports that bring completions back to the core they
// started from (set_peers).
//
// Not thread-safe: the core's thread runs everything.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "facility/facility.hpp"
#include "model/virt_map.hpp"

namespace sve {

struct RouteTable;
enum class FcPageKind : uint16_t;

inline constexpr const char* kFlashCopyFacility = "flashcopy";

struct FlashCopyStats {
  uint64_t requests = 0;          // on vdisks in a mapping
  uint64_t grain_copies = 0;      // for a write (source or target)
  uint64_t background_copies = 0; // at the copy rate
  uint64_t clean_copies = 0;      // for a stopping mapping, to those reading through it
  uint64_t redirected_reads = 0;  // target read pieces served from the source
  uint64_t waits = 0;             // requests that waited for a grain copy
  uint64_t paused = 0;            // writes paused while a mapping started
  uint64_t copy_errors = 0;
  uint64_t bytes_copied = 0;
  uint64_t incremental_kept = 0;  // grains an incremental restart did not copy again
  uint64_t bitmap_writes = 0;     // pages of bitmaps written to the back end
  uint64_t bitmap_waits = 0;      // writes that waited for a grain's bit to be durable
  uint64_t bitmap_loads = 0;      // bitmaps read back (a takeover, a restart)
  uint64_t history_writes = 0;    // pages of incremental histories written
  uint64_t history_loads = 0;     // incremental histories read back
};

// What the node commits for a mapping (re-reported on every call until the
// model changes).
struct CopyEvent {
  enum class Kind {
    clean,    // preparing: this core's share of its vdisks has nothing dirty in cache
    drained,  // starting: this core's writes to its vdisks are paused and drained
    copied,   // copying (or stopping): every grain is copied
    lost,     // copying: what was copied is not known here (`why`)
    cleaned,  // stopping: the mappings reading through its target have what they need
  };
  Kind kind = Kind::clean;
  uint32_t mapping = 0;
  uint64_t start_seq = 0;
  std::string why;
};

// A mapping's progress as its source's core knows it.
struct CopyFigures {
  bool known = false;  // the bitmap is this start's
  uint64_t grains = 0;
  uint64_t copied = 0;
  uint64_t start_seq = 0;
  std::string why;     // why it is not known
};

class FlashCopyFacility final : public Facility {
 public:
  // `core` of `cores`: a vdisk is served by core id % cores.
  FlashCopyFacility(IoServer& lower, unsigned core = 0, unsigned cores = 1);
  ~FlashCopyFacility() override;

  // The other cores: their copy facilities and the facility under each
  // (this core's entries are not used), and each core's port through which
  // a completion on another core comes back to it.
  void set_peers(std::vector<IoServer*> copy_of_core, std::vector<IoServer*> lower_of_core,
                 std::vector<IoClient*> return_ports);

  const char* kind() const override { return kFlashCopyFacility; }
  void set_view(const FacilityView& view) override;
  void submit(IoRequestPtr request) override;
  void io_done(IoRequestPtr request) override;
  uint64_t tick_ms() const override { return 50; }
  void tick(uint64_t now_ms) override;
  nlohmann::json inspect() const override;

  // What the node should commit now. `dirty(vdisk)`: whether this core's
  // cache still holds dirty blocks of a vdisk (or caches it write-back).
  std::vector<CopyEvent> events(const std::function<bool(uint32_t)>& dirty) const;
  std::optional<CopyFigures> figures(uint32_t mapping) const;
  const FlashCopyStats& stats() const { return stats_; }

  struct Map;
  struct Step;
  struct Job;
  struct History;
  struct Redirect;
  struct Span;

 private:
  friend struct FlashCopySteps;
  friend struct FlashCopyBitmapSteps;
  friend struct FlashCopyHistorySteps;
  bool local(uint32_t vdisk) const;
  unsigned core_of(uint32_t vdisk) const { return vdisk % cores_; }
  IoServer& lower_for(uint32_t vdisk);
  // The port that brings a completion from `vdisk`'s core back here.
  IoClient* client_for(uint32_t vdisk);
  bool writes(const IoRequest& r) const;
  // Where a request goes by the state of its vdisk's mapping.
  void route(IoRequestPtr request);
  // A request that waited goes on: a host's (route), or a grain copy's
  // write to its target (copy_write).
  void resume(IoRequestPtr request);
  void pass(IoRequestPtr request);
  // On the home core: a write to a vdisk of an executing mapping (its
  // grains copied first where a mapping needs them), a read of a target.
  void run_write(IoRequestPtr request);
  void read_target(Map& m, IoRequestPtr request);
  // Where [a, b) of `vdisk` is read from, as it read when `reader` started
  // (null: now): through each mapping that targets it and started before,
  // to its source for the grains not yet copied. False if a mapping on
  // the way does not know what it copied.
  bool plan_read(uint32_t vdisk, const CopyLayout* reader, uint64_t a, uint64_t b,
                 std::vector<Redirect>& via, std::vector<Span>& out);
  void hold_redirects(const std::vector<Redirect>& via);
  void release_redirects(const std::vector<Redirect>& via, bool& lost);
  Map* map_here(uint32_t id);
  Map* target_map(uint32_t vdisk);
  bool wait_for_grains(Map& m, IoRequest& request, IoRequestPtr& hold);
  // The grains `m` has not copied in [offset, offset + length).
  void uncopied(Map& m, uint64_t offset, uint64_t length,
                std::vector<std::pair<Map*, uint64_t>>& out);
  // Before `write` changes the vdisk `maps` copy from or to: it waits for
  // grains being copied, the grains they have not copied are copied first,
  // their bits durable. True if it was parked (it goes on when resumed).
  bool copy_before_write(const std::vector<Map*>& maps, IoRequestPtr& write);
  // Marks them being copied, parks `request` on the first, copies them.
  void copy_first(std::vector<std::pair<Map*, uint64_t>>& needed, IoRequestPtr request);
  // `cleaner`: a stopping mapping this copy cleans for (null: none).
  void copy_grain(Map& m, uint64_t grain, bool background, Map* cleaner = nullptr);
  // A grain copy's write to its target: the mappings that started earlier
  // from that target copy the grain first (a restore's copies change it).
  void copy_write(IoRequestPtr write);
  void grain_copied(Map& m, uint64_t grain, int status);
  void finish_grain(Map& m, uint64_t grain);
  void lose(Map& m, std::string why);
  // The bitmap on the back end (flashcopy_bitmap.cpp).
  bool wait_durable(Map& m, IoRequest& request, IoRequestPtr& hold);
  bool wait_changes_durable(Map& m, IoRequest& request, IoRequestPtr& hold);
  void write_page(Map& m, uint64_t page, bool durable, FcPageKind kind = FcPageKind{});
  // Submits one slot's write of a page (`step`: its FlashCopyBitmapSteps::PageWrite).
  void submit_page(Map& m, uint64_t page, uint32_t write_seq, Step* step);
  void page_written(Map& m, uint64_t page, const std::vector<uint64_t>& words, int status,
                    bool durable, FcPageKind kind);
  void load_bitmap(Map& m);
  void bitmap_loaded(Map& m, const Buffer& slots, int status);
  void flush_dirty(Map& m);
  void drop_map(uint32_t id);
  void resume_paused();
  // An incremental mapping's write outside copying: noted in its history
  // (flashcopy_history.cpp); true if it waits for the history's page.
  bool note_change(uint32_t mapping, IoRequestPtr& request);
  void keep_history(const Map& m);
  void drop_history(uint32_t id);
  void apply_history(Map& m);
  History* find_history(uint32_t id, uint64_t incarnation);
  void write_history_page(History& h, uint64_t page);
  void submit_history_page(History& h, uint64_t page, Step* step);
  void history_page_written(History& h, uint64_t page, int status);
  void flush_history(History& h);
  void load_history(const CopyLayout& c);
  void history_loaded(History& h, const Buffer& slots, int status);
  void equal_from_start(History& h, const Buffer& slots, uint64_t page,
                        std::vector<uint64_t>& copied, std::vector<uint64_t>& changed);
  void background(Map& m, uint64_t elapsed_ms);
  // Stopping: the mappings that read through its target copy the grains it
  // has not copied, at its clean rate.
  std::vector<Map*> dependents(const Map& m) const;
  void clean(Map& m, uint64_t elapsed_ms);
  bool cleaned(const Map& m) const;
  Map* find_map(uint32_t id, uint64_t incarnation);

  IoServer& lower_;
  unsigned core_, cores_;
  std::vector<IoServer*> copy_of_core_, lower_of_core_;
  IoClient* return_port_ = nullptr;
  std::vector<IoClient*> return_ports_;  // the other cores' ports
  std::shared_ptr<const VirtMap> map_;
  std::shared_ptr<const RouteTable> routes_;
  bool any_ = false;  // some mapping exists
  std::unordered_set<uint32_t> mapped_;  // the vdisks of every mapping
  // Vdisks in a mapping that is not idle: their writes are counted while
  // below (a start waits for them), and routed by the mapping's state.
  // Grain copies' writes are counted apart, by target: a start waits for
  // its own target's (of an earlier start), not for those into its source
  // (they do not change what the source reads as).
  std::unordered_map<uint32_t, uint32_t> writes_below_;
  std::unordered_map<uint32_t, uint32_t> copy_writes_below_;
  std::unordered_map<uint32_t, uint32_t> source_of_;   // a target vdisk -> its mapping
  // The vdisks of executing mappings -> the core that executes them (their home's).
  std::unordered_map<uint32_t, unsigned> home_core_;
  std::unordered_map<uint32_t, std::vector<uint32_t>> maps_of_source_;  // executing, here
  std::unordered_map<uint32_t, std::unique_ptr<Map>> maps_;  // executing, home on this core
  // Grain copies' writes waiting (for an earlier mapping's copy, a page).
  std::unordered_set<const IoRequest*> copy_writes_;
  // Bitmaps being read back: requests of executing mappings wait for all.
  uint32_t loading_ = 0;
  std::deque<IoRequestPtr> load_waiting_;
  // Incremental mappings not copying: their vdisks -> the mappings, and the
  // histories this core keeps (source here).
  std::unordered_map<uint32_t, std::vector<uint32_t>> incremental_of_;
  std::unordered_map<uint32_t, std::unique_ptr<History>> histories_;
  // Starts this facility paused writes for: mapping -> start_seq.
  std::unordered_map<uint32_t, uint64_t> paused_for_;
  std::unordered_set<uint32_t> paused_vdisks_;  // of mappings starting
  std::deque<IoRequestPtr> paused_;
  uint64_t last_tick_ = 0;
  uint64_t next_incarnation_ = 1;
  // Mappings whose bitmap or history this facility read back: whoever
  // wrote it before may still have a page write on its way to the disk,
  // so their pages are written twice from then on (flashcopy_bitmap.cpp).
  std::unordered_set<uint32_t> read_back_;
  FlashCopyStats stats_;
};

}  // namespace sve

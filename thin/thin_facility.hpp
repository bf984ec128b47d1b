#pragma once
// The thin-provisioning facility: between the cache and virtualization. It
// maps a thin vdisk's virtual offsets onto its real capacity (the vdisk's
// extents, which virtualization maps onto mdisks as for any vdisk), reads
// never-written grains as zeros without I/O, allocates a grain on its first
// write and frees whole grains that are trimmed. Fully allocated vdisks
// pass straight through.
//
// Crash safety (docs/thin.md): a first write's data (and the zeros around
// it in its grain) are durable before the map page naming the grain is
// written, and the host's write completes only after that page is durable.
// A grain is reused only after the page that unmapped it is durable and no
// I/O to it is in flight. One page write is in flight per page; changes
// made meanwhile go together in the next (a group commit).
//
// A vdisk's map is held by the core that serves the vdisk (its id modulo the
// cores), loaded from disk on its first request or when the view says this
// node executes it (or destages it for a handover), and dropped when its
// owner, the cluster generation or the cache epoch changes (another node
// may change the map meanwhile).
//
// Not thread-safe: the core's thread runs everything.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "facility/allocation_query.hpp"
#include "facility/facility.hpp"
#include "model/virt_map.hpp"
#include "thin/thin_map.hpp"

namespace sve {

struct VdiskRoute;

inline constexpr const char* kThinFacility = "thin";

struct ThinStats {
  uint64_t requests = 0;         // on thin vdisks
  uint64_t zero_reads = 0;       // read pieces answered with zeros, no I/O
  uint64_t allocations = 0;      // grains allocated (their map entry durable)
  uint64_t frees = 0;            // grains unmapped by trim or zeroing
  uint64_t meta_writes = 0;      // map pages written
  uint64_t flushes = 0;          // before map pages (the data they name, durable)
  uint64_t meta_reads = 0;       // map chunks read (loading, checking)
  uint64_t no_space = 0;         // requests failed with ENOSPC
  uint64_t waited_for_space = 0; // requests that waited for the vdisk to grow
};

// One thin vdisk as this core sees it, for `vdisk show` and the controller.
struct ThinFigures {
  bool loaded = false;
  uint64_t used_bytes = 0;      // allocated grains
  uint64_t real_bytes = 0;      // the extents
  uint64_t meta_bytes = 0;      // of them, the map's slots
  uint64_t free_bytes = 0;      // free grains in the real capacity
  bool warning = false;         // used crossed the warning threshold
  bool growing = false;         // asked for more extents
  bool out_of_space = false;    // the pool refused to grow it; writes needing grains fail
  uint64_t checks = 0;          // checks finished
  ThinCheck last_check;         // of the last load or check
};

// A thin vdisk that wants more real capacity: at least `needed` extents,
// `wanted` if the pool has them.
struct GrowthRequest {
  uint32_t vdisk = 0;
  uint32_t needed = 1;
  uint32_t wanted = 1;
};

class ThinFacility final : public Facility, public AllocationQuery {
 public:
  // `core` of `cores`: the vdisks this core serves (id % cores == core).
  ThinFacility(IoServer& lower, unsigned core = 0, unsigned cores = 1);
  ~ThinFacility() override;

  const char* kind() const override { return kThinFacility; }
  void set_view(const FacilityView& view) override;
  void submit(IoRequestPtr request) override;
  void io_done(IoRequestPtr request) override;
  nlohmann::json inspect() const override;

  bool allocated(uint32_t vdisk, uint64_t offset, uint64_t length) const override;

  const ThinStats& stats() const { return stats_; }
  std::optional<ThinFigures> figures(uint32_t vdisk) const;
  // Starts a check: the map is read again from disk once no request is in
  // flight (new ones wait), checked, and compared with the grains in use;
  // figures().checks counts up when it is done. 0: started; ENOENT: not a
  // thin vdisk of this core; ESTALE: this node does not execute it now.
  int start_check(uint32_t vdisk);
  // The vdisks that want to grow now (each asked once until it grew or was
  // refused).
  std::vector<GrowthRequest> growth_requests();
  // The pool could not give it any extent (`no_space`): requests waiting
  // for space fail with ENOSPC, and so do new ones needing grains, until the
  // model changes (capacity added, say). Otherwise (a conflict, say) it is
  // asked for again.
  void growth_refused(uint32_t vdisk, bool no_space);

  struct Step;
  struct Vol;
  struct Job;

 private:
  friend struct ThinSteps;
  Vol& vol(const VolumeLayout& layout);
  void start_load(Vol& v);
  void load_next(Vol& v);
  void loaded(Vol& v, int status);
  void run(Vol& v, IoRequestPtr request);
  void answer_status(Vol& v, IoRequestPtr request);
  void park_for_space(Vol& v, IoRequestPtr request);
  void retry_parked(Vol& v);
  void issue(Vol& v, IoRequestPtr child, Step* step, uint64_t offset, uint64_t length);
  void finish_job(Job* job);
  void job_piece_done(Job* job, int status);
  void commit(Vol& v, uint32_t page, Step* waiter);
  void pump_commits(Vol& v, uint32_t page);
  void allocation_done(Vol& v, uint64_t vgrain, uint32_t pgrain, Job* job, int status);
  void unmapped(Vol& v, uint32_t pgrain);
  void try_release(Vol& v, uint32_t pgrain);
  void idle_check(Vol& v);
  void drop(Vol& v, int status_for_parked);
  void note_usage(Vol& v);
  bool local(uint32_t vdisk) const;

  IoServer& lower_;
  unsigned core_, cores_;
  std::shared_ptr<const VirtMap> map_;
  bool any_thin_ = false;  // the map has a thin vdisk
  std::shared_ptr<const RouteTable> routes_;
  std::unordered_map<uint32_t, std::unique_ptr<Vol>> vols_;
  std::vector<std::unique_ptr<Vol>> dropped_;  // freed at the next view
  ThinStats stats_;
};

}  // namespace sve

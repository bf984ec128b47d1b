#pragma once
// thin/ inside: a thin vdisk as its core holds it (Vol), a host request cut
// into grain pieces (Job), and what a request sent below answers to (Step).
// Private to thin/: the facility's users see thin_facility.hpp only.
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "thin/thin_facility.hpp"

namespace sve {

inline constexpr uint32_t kThinNoGrain = UINT32_MAX;  // a step on no data grain

// What a request below answers to: its cookie points at one of these
// (a fast-path request, passed down itself, has bit 0 set instead).
struct ThinFacility::Step {
  virtual ~Step() = default;
  virtual void done(ThinFacility& f, IoRequest& child) = 0;
  // A map page this step waited for is durable (status 0) or failed.
  virtual void committed(ThinFacility& f, int status) { (void)f, (void)status; }
};

// A host request cut into grain pieces.
struct ThinFacility::Job {
  IoRequestPtr request;
  Vol* vol = nullptr;
  uint32_t pending = 1;  // pieces in flight, plus one while they are issued
  int status = 0;
};

struct ThinFacility::Vol {
  uint32_t id = 0;
  std::string name;  // for the log
  uint32_t grain = 0;
  uint64_t virtual_bytes = 0;
  uint64_t real_bytes = 0;
  uint64_t extent_bytes = 0;
  uint32_t warning_pct = 0;
  bool autoexpand = false;
  uint64_t contingency = 0;  // kept free ahead of the writes when autoexpanding
  uint64_t growth_step() const { return std::max(extent_bytes, contingency); }
  enum class State { loading, ready, failed } state = State::loading;
  std::unique_ptr<ThinMap> map;
  ThinGeometry geo;
  // Who executed it when it was loaded: another owner, generation or cache
  // epoch means the map may have changed elsewhere.
  uint32_t owner = 0;
  uint64_t generation = 0, epoch = 0;
  std::deque<IoRequestPtr> parked;        // until the map is loaded (or checked)
  std::deque<IoRequestPtr> space_waiters;  // until it has grown
  // Virtual grains being allocated or unmapped (their page not durable):
  // requests touching them wait, then run again.
  std::unordered_map<uint64_t, std::vector<IoRequestPtr>> changing;
  std::unordered_map<uint64_t, uint32_t> allocating;  // vgrain -> its new grain
  std::unordered_set<uint32_t> freeing;   // unmapped, page not durable yet
  std::unordered_set<uint32_t> releasing; // unmapped durably, waiting for I/O or trim
  // Physical grain -> I/Os in flight on it (a vector: the fast path pays an
  // index, not a hash; requests in flight are far fewer than 65536).
  std::vector<uint16_t> busy;
  void busy_up(uint32_t p) { ++busy[p]; }
  // True when the grain has no I/O left.
  bool busy_down(uint32_t p) { return --busy[p] == 0; }
  // A page's writes: one at a time, each after a flush when it names new
  // data; what arrives meanwhile goes in the next.
  struct PageCommit {
    std::vector<Step*> next;   // waiting for the next write of the page
    bool flush_first = false;  // one of them names data that must be durable first
    Step* flushing = nullptr;  // its flush in flight
    Step* ready = nullptr;     // flushed (or needing none): waits for `writing`
    Step* writing = nullptr;   // the page write in flight
    bool idle() const { return next.empty() && !flushing && !ready && !writing; }
  };
  std::unordered_map<uint32_t, PageCommit> commits;
  uint32_t inflight = 0;  // jobs, fast-path requests, commits, loads, releases
  uint32_t next_load_page = 0;
  bool reload = false;           // a check asked: read the map again when idle
  bool drop_pending = false;
  int drop_status = 0;
  bool want_growth = false, growth_asked = false, refused = false;
  uint32_t grains_needed = 0;    // by the largest request waiting for space
  bool warned = false;
  uint64_t checks = 0;
  ThinCheck last_check;
  // During a check: the map as memory held it, and what its own check found.
  std::unique_ptr<ThinMap> before;
  ThinCheck mem_check;
};

}  // namespace sve

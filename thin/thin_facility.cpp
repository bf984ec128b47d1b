#include "thin/thin_facility.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "model/ownership.hpp"

namespace sve {

namespace {

constexpr uint32_t kLoadChunkPages = 128;  // 1 MiB of slots per read
constexpr uint32_t kNoGrain = UINT32_MAX;

// Zeros [offset, offset + length) of a buffer, across its segments.
void zero_buffer(Buffer& buffer, uint64_t offset, uint64_t length) {
  iovec segs[Buffer::kMaxSegments];
  int n = buffer.slice(offset, length, segs, Buffer::kMaxSegments);
  for (int i = 0; i < n; ++i) std::memset(segs[i].iov_base, 0, segs[i].iov_len);
}

bool writes_data(const IoRequest& r) {
  return r.op == IoOp::write || (r.op == IoOp::write_zeroes && (r.flags & io_flags::no_hole));
}
bool unmaps(const IoRequest& r) {
  return r.op == IoOp::trim || (r.op == IoOp::write_zeroes && !(r.flags & io_flags::no_hole));
}

}  // namespace

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

// ---- the steps -------------------------------------------------------------

struct ThinSteps {
  using Vol = ThinFacility::Vol;
  using Job = ThinFacility::Job;

  // A piece on an allocated grain (or a flush, or a read of the map).
  struct Io final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint32_t pgrain;
    Io(Job* j, Vol* v, uint32_t p) : job(j), vol(v), pgrain(p) {}
    void done(ThinFacility& f, IoRequest& child) override {
      int status = child.status;
      if (pgrain != kNoGrain) {
        if (vol->busy_down(pgrain)) f.try_release(*vol, pgrain);
      }
      Job* j = job;
      delete this;
      f.job_piece_done(j, status);
    }
  };

  // A first write to a grain: its data and zeros, then its map page.
  struct Alloc final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint64_t vgrain;
    uint32_t pgrain;
    uint32_t pending = 0;
    int status = 0;
    Alloc(Job* j, Vol* v, uint64_t g, uint32_t p) : job(j), vol(v), vgrain(g), pgrain(p) {}
    void done(ThinFacility& f, IoRequest& child) override {
      if (child.status && !status) status = child.status;
      if (--pending) return;
      if (status) return finish(f, status, false);
      vol->map->set(vgrain, pgrain);
      vol->allocating.erase(vgrain);
      f.commit(*vol, static_cast<uint32_t>(vgrain / kThinEntriesPerPage), this);
    }
    void committed(ThinFacility& f, int st) override {
      if (!st) ++f.stats_.allocations;
      finish(f, st, true);
    }
    void finish(ThinFacility& f, int st, bool mapped) {
      if (!mapped) {  // never named by the map: free again at once
        vol->allocating.erase(vgrain);
        vol->map->release(pgrain);
      }
      Vol* v = vol;
      Job* j = job;
      uint64_t g = vgrain;
      delete this;
      f.job_piece_done(j, st);
      f.note_usage(*v);
      wake(f, *v, g);
    }
  };

  // A whole grain trimmed or zeroed: its entry cleared, then its page.
  struct Unmap final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint64_t vgrain;
    uint32_t pgrain;
    Unmap(Job* j, Vol* v, uint64_t g, uint32_t p) : job(j), vol(v), vgrain(g), pgrain(p) {}
    void done(ThinFacility&, IoRequest&) override { assert(false); }
    void committed(ThinFacility& f, int st) override {
      Vol* v = vol;
      Job* j = job;
      uint64_t g = vgrain;
      uint32_t p = pgrain;
      delete this;
      v->freeing.erase(p);
      if (st == 0) {
        ++f.stats_.frees;
        f.unmapped(*v, p);
      } else {
        // The page did not go down: the grain stays the vdisk's until a
        // later write of the page carries the change (its entry is clear
        // in memory), and is not reused meanwhile.
        v->releasing.insert(p);
      }
      f.job_piece_done(j, st);
      f.note_usage(*v);
      wake(f, *v, g);
    }
  };

  // A map page written (after a flush, when it maps new data).
  struct Commit final : ThinFacility::Step {
    Vol* vol;
    uint32_t page;
    bool flushing;
    std::vector<ThinFacility::Step*> waiters;
    ThinMap::PageWrite write;
    BufferRef image;
    Commit(Vol* v, uint32_t p, bool f) : vol(v), page(p), flushing(f) {}
    void done(ThinFacility& f, IoRequest& child) override {
      Vol* v = vol;
      uint32_t p = page;
      int st = child.status;
      Vol::PageCommit& pc = v->commits[p];
      if (flushing) {
        pc.flushing = nullptr;
        flushing = false;
        if (st == 0) {  // the data is durable: the page may follow
          pc.ready = this;
          f.pump_commits(*v, p);
          return;
        }
      } else {
        pc.writing = nullptr;
        if (st == 0) {
          v->map->written(write);
          ++f.stats_.meta_writes;
        }
      }
      std::vector<ThinFacility::Step*> done_waiters = std::move(waiters);
      delete this;
      --v->inflight;
      f.pump_commits(*v, p);
      for (ThinFacility::Step* w : done_waiters) w->committed(f, st);
      f.idle_check(*v);
    }
  };

  // Reading the map's slots, a chunk at a time.
  struct Load final : ThinFacility::Step {
    Vol* vol;
    uint32_t first_page, pages;
    BufferRef buffer;
    Load(Vol* v, uint32_t first, uint32_t n) : vol(v), first_page(first), pages(n) {}
    void done(ThinFacility& f, IoRequest& child) override {
      Vol* v = vol;
      int st = child.status;
      if (st == 0) {
        ++f.stats_.meta_reads;
        const char* base = buffer->data();
        for (uint32_t i = 0; i < pages; ++i)
          v->map->load_page(first_page + i, base + uint64_t{i} * 2 * kThinPageBytes,
                            base + (uint64_t{i} * 2 + 1) * kThinPageBytes);
      }
      delete this;
      --v->inflight;
      if (v->drop_pending) return f.idle_check(*v);  // no longer ours to load
      if (st) return f.loaded(*v, st);
      f.load_next(*v);
    }
  };

  // A durably unmapped grain's trim below, before it is free again.
  struct Release final : ThinFacility::Step {
    Vol* vol;
    uint32_t pgrain;
    Release(Vol* v, uint32_t p) : vol(v), pgrain(p) {}
    void done(ThinFacility& f, IoRequest&) override {
      // Whatever the trim did (it is a hint), the grain is free now.
      Vol* v = vol;
      v->releasing.erase(pgrain);
      v->map->release(pgrain);
      delete this;
      --v->inflight;
      f.retry_parked(*v);
      f.idle_check(*v);
    }
  };

  // Requests that waited on a grain run again.
  static void wake(ThinFacility& f, Vol& v, uint64_t vgrain) {
    auto it = v.changing.find(vgrain);
    if (it == v.changing.end()) return;
    std::vector<IoRequestPtr> waiting = std::move(it->second);
    v.changing.erase(it);
    for (auto& r : waiting) {
      --v.inflight;  // counted while it waited
      f.run(v, std::move(r));
    }
    f.idle_check(v);
  }
};

// ---- set-up and the view ----------------------------------------------------

ThinFacility::ThinFacility(IoServer& lower, unsigned core, unsigned cores)
    : lower_(lower), core_(core), cores_(cores ? cores : 1) {}

ThinFacility::~ThinFacility() = default;

bool ThinFacility::local(uint32_t vdisk) const {
  if (!routes_ || routes_->self == 0) return !routes_ || routes_->serving;
  const VdiskRoute* r = routes_->find(vdisk);
  if (!routes_->serving || !r) return false;
  // Handing it over, this node destages what its cache holds while the new
  // owner waits for that: its writes come here.
  return routes_->local(vdisk) || r->handover_by == routes_->self;
}

void ThinFacility::set_view(const FacilityView& view) {
  dropped_.clear();  // no request is on the stack here
  if (view.map) {
    map_ = view.map;
    any_thin_ = std::any_of(map_->volumes.begin(), map_->volumes.end(),
                            [](const auto& v) { return v.second.thin(); });
  }
  if (view.routes) routes_ = view.routes;
  std::vector<uint32_t> ids;
  for (auto& [id, v] : vols_) ids.push_back(id);
  for (uint32_t id : ids) {
    Vol& v = *vols_[id];
    if (v.drop_pending) continue;
    const VolumeLayout* layout = map_ ? map_->find(id) : nullptr;
    if (!layout || !layout->thin() || layout->grain_bytes != v.grain ||
        layout->size_bytes != v.virtual_bytes) {
      drop(v, ENODEV);
      continue;
    }
    if (v.state == Vol::State::failed) {  // its map could not be read: try again
      drop(v, EIO);
      continue;
    }
    const VdiskRoute* r = routes_ ? routes_->find(id) : nullptr;
    if (!local(id) || (r && (r->owner != v.owner || r->epoch != v.epoch)) ||
        (routes_ && routes_->generation != v.generation)) {
      drop(v, ESTALE);
      continue;
    }
    v.warning_pct = layout->warning_pct;
    v.autoexpand = layout->autoexpand;
    v.refused = false;  // the model changed: capacity may have come
    if (layout->addressable_bytes() > v.real_bytes) {
      v.real_bytes = layout->addressable_bytes();
      if (v.map) {
        v.map->grow(v.real_bytes);
        v.busy.resize(v.map->data_grains(), 0);
      }
      v.growth_asked = false;
      v.want_growth = false;
    }
    if (v.state == Vol::State::ready && !v.drop_pending) {
      note_usage(v);
      retry_parked(v);
    }
  }
  // Load the maps of this core's thin vdisks that this node executes now,
  // so that the first request, and `vdisk show`, need not wait.
  if (map_)
    for (const auto& [id, layout] : map_->volumes)
      if (layout.thin() && id % cores_ == core_ && !vols_.count(id) && local(id)) vol(layout);
}

ThinFacility::Vol& ThinFacility::vol(const VolumeLayout& layout) {
  auto& slot = vols_[layout.id];
  if (slot) return *slot;
  slot = std::make_unique<Vol>();
  Vol& v = *slot;
  v.id = layout.id;
  v.name = layout.name;
  v.grain = layout.grain_bytes;
  v.virtual_bytes = layout.size_bytes;
  v.real_bytes = layout.addressable_bytes();
  v.extent_bytes = layout.extent_bytes;
  v.warning_pct = layout.warning_pct;
  v.autoexpand = layout.autoexpand;
  v.contingency = layout.contingency_bytes;
  v.geo = ThinGeometry{v.virtual_bytes, v.grain};
  if (const VdiskRoute* r = routes_ ? routes_->find(v.id) : nullptr) {
    v.owner = r->owner;
    v.epoch = r->epoch;
  }
  v.generation = routes_ ? routes_->generation : 0;
  start_load(v);
  return v;
}

// ---- loading ----------------------------------------------------------------

void ThinFacility::start_load(Vol& v) {
  v.state = Vol::State::loading;
  v.map = std::make_unique<ThinMap>(v.id, v.geo, v.real_bytes);
  v.busy.resize(v.map->data_grains(), 0);
  v.next_load_page = 0;
  if (v.real_bytes < v.geo.meta_bytes()) {
    spdlog::error("thin vdisk {}: its real capacity ({} bytes) cannot hold its map ({} bytes)",
                  v.name, v.real_bytes, v.geo.meta_bytes());
    return loaded(v, EIO);
  }
  load_next(v);
}

void ThinFacility::load_next(Vol& v) {
  uint32_t first = v.next_load_page;
  if (first >= v.geo.pages()) return loaded(v, 0);
  uint32_t n = std::min(kLoadChunkPages, v.geo.pages() - first);
  v.next_load_page = first + n;
  auto* step = new ThinSteps::Load(&v, first, n);
  step->buffer = Buffer::allocate(uint64_t{n} * 2 * kThinPageBytes);
  IoRequestPtr child = make_request();
  child->op = IoOp::read;
  child->buffer = step->buffer;
  ++v.inflight;
  issue(v, std::move(child), step, v.geo.slot_offset(first, 0),
        uint64_t{n} * 2 * kThinPageBytes);
}

void ThinFacility::loaded(Vol& v, int status) {
  if (status) {
    v.state = Vol::State::failed;
    spdlog::error("thin vdisk {}: its map could not be read ({}): its requests fail with EIO",
                  v.name, std::strerror(status));
  } else {
    v.last_check = v.map->finish_load();
    if (v.before) {  // a check: memory before, disk now
      const ThinMap& mem = *v.before;
      for (uint32_t page = 0; page < v.geo.pages(); ++page) {
        const uint32_t* a = mem.page_entries(page);
        const uint32_t* b = v.map->page_entries(page);
        for (uint32_t i = 0; i < mem.page_entry_count(page); ++i) v.last_check.differs += a[i] != b[i];
      }
      v.last_check.leaked += v.mem_check.leaked;
      v.last_check.lost += v.mem_check.lost;
      v.last_check.mapped_twice += v.mem_check.mapped_twice;
      v.before.reset();
    }
    ++v.checks;
    v.state = Vol::State::ready;
    // A threshold crossed before this load was announced then: only a new
    // crossing is an event.
    v.warned = v.warning_pct &&
               v.map->mapped_grains() * v.grain * 100 >= v.virtual_bytes * v.warning_pct;
    if (!v.last_check.clean() || v.last_check.torn_slots)
      spdlog::warn("thin vdisk {}: map loaded: {}", v.name, v.last_check.describe());
    else
      spdlog::debug("thin vdisk {}: map loaded: {}", v.name, v.last_check.describe());
    note_usage(v);
  }
  retry_parked(v);
}

// ---- requests ----------------------------------------------------------------

void ThinFacility::submit(IoRequestPtr request) {
  if (!any_thin_) {  // the common case costs one test
    lower_.submit(std::move(request));
    return;
  }
  const VolumeLayout* layout = map_ ? map_->find(request->volume) : nullptr;
  if (!layout || !layout->thin() || request->op == IoOp::flush) {
    lower_.submit(std::move(request));  // virtualization answers for the rest
    return;
  }
  ++stats_.requests;
  uint64_t end = request->offset + request->length;
  if (end < request->offset || end > layout->size_bytes) return complete(std::move(request), ERANGE);
  if (request->length == 0) return complete(std::move(request), 0);
  // One core holds a vdisk's map; another core's would allocate the same
  // grains.
  if (cores_ > 1 && request->volume % cores_ != core_) return complete(std::move(request), EXDEV);
  if (!local(request->volume)) return complete(std::move(request), ESTALE);
  Vol& v = vol(*layout);
  if (v.state != Vol::State::ready || v.reload || v.drop_pending || !v.parked.empty()) {
    if (v.state == Vol::State::failed) return complete(std::move(request), EIO);
    v.parked.push_back(std::move(request));
    return;
  }
  run(v, std::move(request));
}

void ThinFacility::retry_parked(Vol& v) {
  if (v.state == Vol::State::failed) {
    auto parked = std::move(v.parked);
    auto waiters = std::move(v.space_waiters);
    v.parked.clear();
    v.space_waiters.clear();
    for (auto& r : parked) complete(std::move(r), EIO);
    for (auto& r : waiters) complete(std::move(r), EIO);
    return;
  }
  if (v.state != Vol::State::ready || v.reload || v.drop_pending) return;
  // Space first (they came earlier), then what waited for the load.
  std::deque<IoRequestPtr> waiters;
  waiters.swap(v.space_waiters);
  v.grains_needed = 0;
  for (auto& r : waiters) run(v, std::move(r));
  while (!v.parked.empty() && !v.reload && !v.drop_pending) {
    IoRequestPtr r = std::move(v.parked.front());
    v.parked.pop_front();
    run(v, std::move(r));
  }
}

void ThinFacility::park_for_space(Vol& v, IoRequestPtr request) {
  ++stats_.waited_for_space;
  v.want_growth = true;
  v.space_waiters.push_back(std::move(request));
}

void ThinFacility::issue(Vol& v, IoRequestPtr child, Step* step, uint64_t offset,
                         uint64_t length) {
  child->volume = v.id;
  child->offset = offset;
  child->length = length;
  child->client = this;
  child->cookie = reinterpret_cast<uint64_t>(step);
  lower_.submit(std::move(child));
}

void ThinFacility::answer_status(Vol& v, IoRequestPtr request) {
  // Runs of allocated (data) and unallocated (a hole that reads zeros)
  // grains, clipped to the range; at most what the asker takes.
  const uint64_t G = v.grain;
  uint32_t cap = block_status_capacity(*request);
  std::vector<StatusExtent> runs;
  uint64_t at = request->offset, end = request->offset + request->length;
  while (at < end && runs.size() <= cap) {
    uint64_t g = at / G;
    uint64_t upto = std::min(end, (g + 1) * G);
    uint32_t flags = v.map->lookup(g) ? 0 : status_flags::hole | status_flags::zero;
    auto length = static_cast<uint32_t>(upto - at);
    if (!runs.empty() && runs.back().flags == flags) runs.back().length += length;
    else runs.push_back({length, flags});
    at = upto;
  }
  put_block_status(*request, runs.data(), runs.size());
  complete(std::move(request), 0);
}

void ThinFacility::run(Vol& v, IoRequestPtr request) {
  if (request->op == IoOp::block_status) return answer_status(v, std::move(request));
  const uint64_t G = v.grain;
  const uint64_t first = request->offset / G;
  const uint64_t last = (request->offset + request->length - 1) / G;
  ThinMap& map = *v.map;
  // A grain being allocated or unmapped: wait for it, then start again.
  for (uint64_t g = first; g <= last; ++g)
    if (auto it = v.changing.find(g); it != v.changing.end()) {
      ++v.inflight;
      it->second.push_back(std::move(request));
      return;
    }
  // The fast path: one allocated grain, read or written in place.
  if (first == last && (request->op == IoOp::read || writes_data(*request))) {
    if (auto p = map.lookup(first)) {
      uint64_t within = request->offset - first * G;
      v.busy_up(*p);
      ++v.inflight;
      request->intercept(this, (first << 1) | 1);
      request->offset = v.geo.grain_offset(*p) + within;
      lower_.submit(std::move(request));
      return;
    }
  }
  // Grains this request allocates: all of them now, or it waits / fails.
  if (writes_data(*request)) {
    uint32_t needed = 0;
    for (uint64_t g = first; g <= last; ++g) needed += !map.lookup(g);
    if (needed > map.free_grains()) {
      if (v.autoexpand && !v.refused) {
        v.grains_needed = std::max(v.grains_needed, needed);
        return park_for_space(v, std::move(request));
      }
      ++stats_.no_space;
      return complete(std::move(request), ENOSPC);
    }
  }
  auto* job = new Job{request, &v};
  ++v.inflight;
  for (uint64_t g = first; g <= last; ++g) {
    uint64_t gstart = g * G;
    uint64_t gend = std::min(gstart + G, v.virtual_bytes);
    uint64_t a = std::max(request->offset, gstart);
    uint64_t b = std::min(request->offset + request->length, gend);
    uint64_t within = a - request->offset;  // in the request
    std::optional<uint32_t> p = map.lookup(g);
    auto piece = [&](IoOp op, uint32_t flags, uint64_t offset, uint64_t length,
                     Step* step) {
      IoRequestPtr child = make_request();
      child->op = op;
      child->flags = flags;
      if (op == IoOp::read || op == IoOp::write) {
        child->buffer = request->buffer;
        child->buffer_offset = request->buffer_offset + within;
      }
      ++job->pending;
      issue(v, std::move(child), step, offset, length);
    };
    if (request->op == IoOp::read) {
      if (!p) {
        ++stats_.zero_reads;
        zero_buffer(*request->buffer, request->buffer_offset + within, b - a);
        continue;
      }
      v.busy_up(*p);
      piece(IoOp::read, request->flags, v.geo.grain_offset(*p) + (a - gstart), b - a,
            new ThinSteps::Io(job, &v, *p));
    } else if (writes_data(*request)) {
      if (p) {
        v.busy_up(*p);
        piece(request->op, request->flags, v.geo.grain_offset(*p) + (a - gstart), b - a,
              new ThinSteps::Io(job, &v, *p));
        continue;
      }
      // The first write: the data, zeros in the rest of the grain, then
      // the map (Alloc). The flush before the map page makes them durable.
      uint32_t q = *map.allocate();
      v.changing[g];
      v.allocating[g] = q;
      auto* alloc = new ThinSteps::Alloc(job, &v, g, q);
      ++job->pending;  // the allocation as a whole
      uint64_t base = v.geo.grain_offset(q);
      auto sub = [&](IoOp op, uint32_t flags, uint64_t from, uint64_t length) {
        IoRequestPtr child = make_request();
        child->op = op;
        child->flags = flags;
        if (op == IoOp::write) {
          child->buffer = request->buffer;
          child->buffer_offset = request->buffer_offset + within;
        }
        ++alloc->pending;
        issue(v, std::move(child), alloc, base + from, length);
      };
      uint32_t data_flags = request->flags & ~io_flags::fua;  // the flush makes it durable
      // The zeros keep their blocks (NO_HOLE: fallocate's ZERO_RANGE on a
      // file rather than a hole the data then fills: 3x the first writes
      // a second measured on a file mdisk).
      if (a > gstart) sub(IoOp::write_zeroes, io_flags::no_hole, 0, a - gstart);
      sub(request->op, data_flags, a - gstart, b - a);
      if (b - gstart < G) sub(IoOp::write_zeroes, io_flags::no_hole, b - gstart, G - (b - gstart));
    } else if (unmaps(*request)) {
      if (!p) continue;  // reads as zeros already
      if (a == gstart && b == gend) {
        map.set(g, std::nullopt);
        v.changing[g];
        v.freeing.insert(*p);
        ++job->pending;
        commit(v, static_cast<uint32_t>(g / kThinEntriesPerPage),
               new ThinSteps::Unmap(job, &v, g, *p));
        continue;
      }
      v.busy_up(*p);  // part of a grain: zeroed (or trimmed) in place
      piece(request->op, request->flags, v.geo.grain_offset(*p) + (a - gstart), b - a,
            new ThinSteps::Io(job, &v, *p));
    } else {
      if (!job->status) job->status = EOPNOTSUPP;
    }
  }
  job_piece_done(job, 0);  // all issued
}

void ThinFacility::job_piece_done(Job* job, int status) {
  if (status && !job->status) job->status = status;
  if (--job->pending) return;
  Vol* v = job->vol;
  IoRequestPtr request = std::move(job->request);
  int st = job->status;
  delete job;
  --v->inflight;
  complete(std::move(request), st);
  idle_check(*v);
}

void ThinFacility::io_done(IoRequestPtr child) {
  if (child->cookie & 1) {  // the fast path: the host's own request
    uint64_t g = child->cookie >> 1;
    auto it = vols_.find(child->volume);
    assert(it != vols_.end());
    Vol& v = *it->second;
    uint64_t within = (child->offset - v.geo.meta_bytes()) % v.grain;
    auto p = static_cast<uint32_t>((child->offset - v.geo.meta_bytes()) / v.grain);
    child->offset = g * v.grain + within;
    child->restore();
    if (v.busy_down(p)) try_release(v, p);
    --v.inflight;
    int status = child->status;
    complete(std::move(child), status);
    idle_check(v);
    return;
  }
  auto* step = reinterpret_cast<Step*>(child->cookie);
  step->done(*this, *child);
}

// ---- map pages ----------------------------------------------------------------

void ThinFacility::commit(Vol& v, uint32_t page, Step* waiter) {
  Vol::PageCommit& pc = v.commits[page];
  pc.next.push_back(waiter);
  if (dynamic_cast<ThinSteps::Alloc*>(waiter)) pc.flush_first = true;
  pump_commits(v, page);
}

void ThinFacility::pump_commits(Vol& v, uint32_t page) {
  for (;;) {
    // Found again each time: a completion that runs inline (in a test)
    // may have pumped, and erased it, meanwhile.
    auto it = v.commits.find(page);
    if (it == v.commits.end()) return;
    Vol::PageCommit& pc = it->second;
    if (pc.ready && !pc.writing) {  // the page write, in the slot chosen now
      auto* step = static_cast<ThinSteps::Commit*>(pc.ready);
      pc.ready = nullptr;
      pc.writing = step;
      step->write = v.map->seal(page, step->image->data());
      IoRequestPtr child = make_request();
      child->op = IoOp::write;
      child->flags = io_flags::fua;
      child->buffer = step->image;
      issue(v, std::move(child), step, v.geo.slot_offset(page, step->write.slot),
            kThinPageBytes);
      continue;
    }
    // The next write's flush waits for the page write in flight: on a disk
    // whose syncs are the cost, larger batches (all that arrived during
    // both) beat overlapping them (measured: 18k against 11k first writes
    // a second on a file, docs/benchmarks.md).
    if (!pc.next.empty() && !pc.flushing && !pc.ready && !pc.writing) {
      auto* step = new ThinSteps::Commit(&v, page, pc.flush_first);
      step->waiters.swap(pc.next);
      pc.flush_first = false;
      ++v.inflight;
      // The page as memory holds it now: every entry set so far names data
      // whose write has completed, which the flush makes durable. Entries
      // set while the flush is in flight go in the next write of the page
      // (their data may not be durable yet).
      step->image = Buffer::allocate(kThinPageBytes);
      v.map->snapshot(page, step->image->data());
      if (step->flushing) {  // the data these entries name, durable first
        ++stats_.flushes;
        pc.flushing = step;
        IoRequestPtr child = make_request();
        child->op = IoOp::flush;
        issue(v, std::move(child), step, 0, 0);
      } else {
        pc.ready = step;
      }
      continue;
    }
    if (pc.idle()) v.commits.erase(it);
    return;
  }
}

// ---- freeing ----------------------------------------------------------------

void ThinFacility::unmapped(Vol& v, uint32_t pgrain) {
  v.releasing.insert(pgrain);
  try_release(v, pgrain);
}

void ThinFacility::try_release(Vol& v, uint32_t pgrain) {
  if (v.releasing.empty() || !v.releasing.count(pgrain) || v.busy[pgrain]) return;
  // The back end may drop the grain's blocks; it is free once that is done.
  auto* step = new ThinSteps::Release(&v, pgrain);
  ++v.inflight;
  IoRequestPtr child = make_request();
  child->op = IoOp::trim;
  issue(v, std::move(child), step, v.geo.grain_offset(pgrain), v.grain);
}

// ---- growth, usage, checks ----------------------------------------------------

void ThinFacility::note_usage(Vol& v) {
  if (!v.map || v.state != Vol::State::ready) return;
  uint64_t used = v.map->mapped_grains() * v.grain;
  bool over = v.warning_pct && used * 100 >= v.virtual_bytes * v.warning_pct;
  if (over && !v.warned)
    spdlog::warn("event: thin vdisk {} has used {}% of its virtual size (warning at {}%)", v.name,
                 used * 100 / v.virtual_bytes, v.warning_pct);
  v.warned = over;
  // Grow ahead of need: when what is free falls under half the contingency
  // (SVC keeps the real capacity about that far ahead of what is used).
  if (v.autoexpand && !v.refused && v.extent_bytes) {
    if (uint64_t{v.map->free_grains()} * v.grain < v.growth_step() / 2) v.want_growth = true;
  }
}

std::vector<GrowthRequest> ThinFacility::growth_requests() {
  std::vector<GrowthRequest> out;
  for (auto& [id, vp] : vols_) {
    Vol& v = *vp;
    if (!v.want_growth || v.growth_asked || v.refused || !v.autoexpand || !v.extent_bytes ||
        v.state != Vol::State::ready)
      continue;
    v.growth_asked = true;
    uint64_t short_by = v.grains_needed > v.map->free_grains()
                            ? uint64_t{v.grains_needed - v.map->free_grains()} * v.grain
                            : 0;
    uint64_t step = v.growth_step();
    GrowthRequest g;
    g.vdisk = id;
    g.needed = static_cast<uint32_t>(std::max<uint64_t>(
        1, (short_by + v.extent_bytes - 1) / v.extent_bytes));
    g.wanted = static_cast<uint32_t>(
        std::max<uint64_t>(g.needed, (short_by + step + v.extent_bytes - 1) / v.extent_bytes));
    out.push_back(g);
  }
  return out;
}

void ThinFacility::growth_refused(uint32_t vdisk, bool no_space) {
  auto it = vols_.find(vdisk);
  if (it == vols_.end()) return;
  Vol& v = *it->second;
  if (!no_space) {
    v.growth_asked = false;  // asked again on the controller's next tick
    return;
  }
  v.refused = true;
  v.growth_asked = false;
  v.want_growth = false;
  v.grains_needed = 0;
  std::deque<IoRequestPtr> waiters;
  waiters.swap(v.space_waiters);
  // They run again: those that fit in what is free now go on, the others
  // fail with ENOSPC.
  for (auto& r : waiters) run(v, std::move(r));
}

bool ThinFacility::allocated(uint32_t vdisk, uint64_t offset, uint64_t length) const {
  auto it = vols_.find(vdisk);
  if (it == vols_.end() || length == 0) return false;
  const Vol& v = *it->second;
  if (v.state != Vol::State::ready || v.reload || v.drop_pending) return false;
  uint64_t end = offset + length;
  if (end < offset || end > v.virtual_bytes) return false;
  for (uint64_t g = offset / v.grain; g <= (end - 1) / v.grain; ++g)
    if (!v.map->lookup(g) || v.changing.count(g)) return false;
  return true;
}

std::optional<ThinFigures> ThinFacility::figures(uint32_t vdisk) const {
  auto it = vols_.find(vdisk);
  if (it == vols_.end()) return std::nullopt;
  const Vol& v = *it->second;
  ThinFigures f;
  f.loaded = v.state == Vol::State::ready;
  f.real_bytes = v.real_bytes;
  f.meta_bytes = v.geo.meta_bytes();
  if (v.map) {
    f.used_bytes = v.map->mapped_grains() * v.grain;
    f.free_bytes = uint64_t{v.map->free_grains()} * v.grain;
  }
  f.warning = v.warned;
  f.growing = v.growth_asked;
  f.out_of_space = v.refused;
  f.checks = v.checks;
  f.last_check = v.last_check;
  return f;
}

int ThinFacility::start_check(uint32_t vdisk) {
  const VolumeLayout* layout = map_ ? map_->find(vdisk) : nullptr;
  if (!layout || !layout->thin() || (cores_ > 1 && vdisk % cores_ != core_)) return ENOENT;
  if (!local(vdisk)) return ESTALE;
  Vol& v = vol(*layout);
  if (v.state == Vol::State::ready) {
    v.reload = true;
    idle_check(v);
  }
  return 0;  // a load in progress ends with its own check
}

void ThinFacility::idle_check(Vol& v) {
  if (v.inflight || !v.commits.empty()) return;
  if (v.drop_pending) {
    uint32_t id = v.id;
    int status = v.drop_status;
    std::deque<IoRequestPtr> parked = std::move(v.parked);
    for (auto& r : v.space_waiters) parked.push_back(std::move(r));
    // Out of the table, but alive until the next view: callers up the
    // stack may still hold it.
    auto it = vols_.find(id);
    dropped_.push_back(std::move(it->second));
    vols_.erase(it);
    for (auto& r : parked) {
      if (status == ESTALE && local(r->volume)) submit(std::move(r));
      else complete(std::move(r), status);
    }
    return;
  }
  if (v.reload && v.state == Vol::State::ready) {
    // Nothing is in flight: every grain in use is named by the map, and
    // what memory holds is what the pages on disk hold. Read them again
    // and compare (loaded() does).
    v.reload = false;
    v.mem_check = v.map->check({});
    v.before = std::move(v.map);
    start_load(v);
  }
}

void ThinFacility::drop(Vol& v, int status) {
  v.drop_pending = true;
  v.drop_status = status;
  idle_check(v);
}

nlohmann::json ThinFacility::inspect() const {
  nlohmann::json vols = nlohmann::json::object();
  for (const auto& [id, vp] : vols_) {
    auto f = figures(id);
    vols[std::to_string(id)] = {{"loaded", f->loaded},          {"used_bytes", f->used_bytes},
                                {"real_bytes", f->real_bytes},  {"free_bytes", f->free_bytes},
                                {"parked", vp->parked.size()},  {"waiting_for_space", vp->space_waiters.size()},
                                {"in_flight", vp->inflight},    {"out_of_space", f->out_of_space}};
  }
  return {{"requests", stats_.requests},       {"zero_reads", stats_.zero_reads},
          {"allocations", stats_.allocations}, {"frees", stats_.frees},
          {"meta_writes", stats_.meta_writes}, {"meta_reads", stats_.meta_reads},
          {"flushes", stats_.flushes},
          {"no_space", stats_.no_space},       {"waited_for_space", stats_.waited_for_space},
          {"vdisks", vols}};
}

}  // namespace sve

#include "thin/thin_facility.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "model/ownership.hpp"
#include "thin/thin_steps.hpp"

namespace sve {

namespace {

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
  std::vector<bool> hole;  // a read's grains that read as zeros
  if (request->op == IoOp::read) hole.resize(last - first + 1);
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
        hole[g - first] = true;
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
  // The front end may send the holes as such (NBD's OFFSET_HOLE).
  if (request->op == IoOp::read)
    mark_holes(*request, G, [&](uint64_t g) { return bool(hole[g - first]); });
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

}  // namespace sve

#include "cache/cache_facility.hpp"

#include <algorithm>
#include <cassert>

namespace sve {

const char* to_string(CacheMode mode) {
  switch (mode) {
    case CacheMode::off: return "off";
    case CacheMode::write_through: return "write-through";
    case CacheMode::write_back: return "write-back";
  }
  return "?";
}

namespace {

constexpr uint64_t kBlock = kCacheBlockBytes;

bool changes_back_end(IoOp op) {
  return op == IoOp::write || op == IoOp::write_zeroes || op == IoOp::trim;
}

}  // namespace

CacheFacility::CacheFacility(IoServer& lower, uint32_t capacity_blocks)
    : lower_(lower),
      directory_(capacity_blocks ? std::make_unique<CacheDirectory>(capacity_blocks) : nullptr) {
  records_.reserve(256);
  free_records_.reserve(256);
  active_.reserve(256);
}

CacheFacility::~CacheFacility() = default;

void CacheFacility::set_map(std::shared_ptr<const VirtMap> map) {
  if (directory_ && map_) {
    for (const auto& [id, layout] : map_->volumes) {
      if (map->find(id)) continue;
      directory_->drop(id, true);  // the vdisk is gone, and its data with it
      vdisks_.erase(id);
    }
  }
  map_ = std::move(map);
}

void CacheFacility::set_routes(std::shared_ptr<const RouteTable> routes) {
  auto old = std::move(routes_);
  routes_ = std::move(routes);
  if (!directory_ || !old) return;
  // Owned elsewhere now, or no longer cached: what this node held may go
  // stale, so it goes.
  for (const auto& [id, route] : old->vdisks)
    if (mode(id) == CacheMode::off) directory_->drop(id, false);
}

CacheMode CacheFacility::mode(uint32_t vdisk) const {
  const VdiskRoute* r = directory_ && routes_ && routes_->serving ? routes_->find(vdisk) : nullptr;
  return r && routes_->local(vdisk) ? r->mode : CacheMode::off;
}

std::string CacheFacility::mode_reason(uint32_t vdisk) const {
  if (!directory_) return "no cache memory configured";
  const VdiskRoute* r = routes_ ? routes_->find(vdisk) : nullptr;
  if (!r) return "no such vdisk";
  if (!routes_->serving) return "this node is not serving I/O now";
  if (!routes_->local(vdisk))
    return r->owner ? "owned by node " + std::to_string(r->owner) : r->why;
  return r->why;
}

void CacheFacility::submit(IoRequestPtr request) {
  const VolumeLayout* layout =
      directory_ && map_ ? map_->find(request->volume) : nullptr;
  uint64_t end = request->offset + request->length;
  // Off, a flush, or a request the layers below will refuse: straight on.
  if (!layout || mode(request->volume) == CacheMode::off || request->op == IoOp::flush ||
      request->length == 0 ||
      end < request->offset || end > layout->size_bytes) {
    lower_.submit(std::move(request));
    return;
  }
  uint64_t first = request->offset / kBlock;
  uint64_t last = (end - 1) / kBlock;
  CacheVdiskStats& stats = vdisks_[request->volume];
  if (request->op == IoOp::read) {
    ++stats.reads;
    stats.bytes_read += request->length;
    if (try_hit(*request, first, last)) {
      ++stats.read_hits;
      stats.bytes_hit += request->length;
      complete(std::move(request), 0);
      return;
    }
    pass_down(std::move(request), first, last, false);
    return;
  }
  if (changes_back_end(request->op)) {
    ++stats.writes;
    stats.bytes_written += request->length;
    // The back end is about to change under these blocks; reads meanwhile
    // go to it (a read concurrent with a write may see either).
    directory_->discard_clean(request->volume, first, last);
    taint_overlapping(request->volume, first, last);
    pass_down(std::move(request), first, last, true);
    return;
  }
  lower_.submit(std::move(request));
}

bool CacheFacility::try_hit(IoRequest& request, uint64_t first, uint64_t last) {
  for (uint64_t b = first; b <= last; ++b)
    if (!directory_->find(request.volume, b)) return false;
  uint64_t end = request.offset + request.length;
  for (uint64_t b = first; b <= last; ++b) {
    CacheBlock* block = directory_->find(request.volume, b);
    uint64_t from = std::max(request.offset, b * kBlock);
    uint64_t to = std::min(end, (b + 1) * kBlock);
    request.buffer->copy_in(request.buffer_offset + (from - request.offset), to - from,
                            directory_->data(*block) + (from - b * kBlock));
  }
  return true;
}

void CacheFacility::pass_down(IoRequestPtr request, uint64_t first, uint64_t last,
                              bool is_write) {
  uint32_t index = take_record();
  InFlight& r = records_[index];
  r.vdisk = request->volume;
  r.first = first;
  r.last = last;
  r.is_write = is_write;
  // Data read while a write to the same blocks is in flight may be from
  // before or after it: not worth keeping.
  r.tainted = overlaps_write(r.vdisk, first, last);
  r.active_pos = static_cast<uint32_t>(active_.size());
  active_.push_back(index);
  request->intercept(this, index);
  lower_.submit(std::move(request));
}

void CacheFacility::io_done(IoRequestPtr request) {
  auto index = static_cast<uint32_t>(request->cookie);
  bool keep = request->status == 0 && !records_[index].tainted;
  release_record(index);
  request->restore();
  if (keep && (request->op == IoOp::read || request->op == IoOp::write) &&
      mode(request->volume) != CacheMode::off)
    keep_blocks(*request);
  IoClient* client = request->client;
  client->io_done(std::move(request));
}

void CacheFacility::keep_blocks(const IoRequest& request) {
  if (!map_ || !map_->find(request.volume)) return;  // deleted meanwhile
  uint64_t end = request.offset + request.length;
  uint64_t first = (request.offset + kBlock - 1) / kBlock;
  uint64_t last_end = end / kBlock;  // blocks [first, last_end) are whole
  for (uint64_t b = first; b < last_end; ++b) {
    CacheBlock* block = directory_->insert_clean(request.volume, b);
    if (!block) return;  // every block is dirty: nothing to evict
    if (block->state != CacheBlock::State::clean) continue;  // newer data
    request.buffer->copy_out(request.buffer_offset + (b * kBlock - request.offset), kBlock,
                             directory_->data(*block));
  }
}

bool CacheFacility::overlaps_write(uint32_t vdisk, uint64_t first, uint64_t last) const {
  for (uint32_t i : active_) {
    const InFlight& r = records_[i];
    if (r.is_write && r.vdisk == vdisk && r.first <= last && first <= r.last) return true;
  }
  return false;
}

void CacheFacility::taint_overlapping(uint32_t vdisk, uint64_t first, uint64_t last) {
  for (uint32_t i : active_) {
    InFlight& r = records_[i];
    if (r.vdisk == vdisk && r.first <= last && first <= r.last) r.tainted = true;
  }
}

uint32_t CacheFacility::take_record() {
  if (free_records_.empty()) {
    records_.emplace_back();
    return static_cast<uint32_t>(records_.size() - 1);
  }
  uint32_t index = free_records_.back();
  free_records_.pop_back();
  return index;
}

void CacheFacility::release_record(uint32_t index) {
  uint32_t pos = records_[index].active_pos;
  assert(pos < active_.size() && active_[pos] == index);
  active_[pos] = active_.back();
  records_[active_[pos]].active_pos = pos;
  active_.pop_back();
  free_records_.push_back(index);
}

CacheCounts CacheFacility::counts() const {
  return directory_ ? directory_->counts() : CacheCounts{};
}

uint64_t CacheFacility::capacity_bytes() const {
  return directory_ ? uint64_t{directory_->counts().capacity} * kBlock : 0;
}

const CacheVdiskStats* CacheFacility::vdisk_stats(uint32_t vdisk) const {
  auto it = vdisks_.find(vdisk);
  return it == vdisks_.end() ? nullptr : &it->second;
}

}  // namespace sve

// The cache facility: request routing, reads, write-through, and the
// bookkeeping of requests in flight below. Write-back and the partner's
// copies are in cache_write_back.cpp, destage in cache_destage.cpp.
#include "cache/cache_facility.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>

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
constexpr uint32_t kNoSlot = UINT32_MAX;
// A read or write-through request this large is streaming: copying it into
// the cache would cost more than a later hit could save (and evict what
// the small random requests around it reuse). It passes without leaving
// blocks behind; whatever it overlaps is still kept coherent.
constexpr uint64_t kStreamingBytes = 256 * 1024;

bool changes_back_end(IoOp op) {
  return op == IoOp::write || op == IoOp::write_zeroes || op == IoOp::trim;
}

}  // namespace

CacheFacility::CacheFacility(IoServer& lower, uint32_t capacity_blocks, Nvram* nvram,
                             MirrorLink* mirror, uint32_t self)
    : lower_(lower),
      directory_(capacity_blocks ? std::make_unique<CacheDirectory>(capacity_blocks) : nullptr),
      nvram_(nvram),
      mirror_(mirror),
      self_(self),
      block_slot_(capacity_blocks, kNoSlot),
      block_seq_(capacity_blocks, 0),
      block_epoch_(capacity_blocks, 0) {
  records_.reserve(256);
  free_records_.reserve(256);
  active_.reserve(256);
  if (!nvram_) return;
  // A block the directory frees lets go of the slot holding its data.
  if (directory_) directory_->on_free([this](CacheBlock& b) { forget_slot(b); });
  slot_pins_.assign(nvram_->slots(), 0);
  release_deferred_.assign(nvram_->slots(), 0);
  // What the non-volatile memory held when the node started: kept aside
  // until the route table says which copies still count.
  for (const NvramEntry& e : nvram_->recovered()) {
    if (e.length != kBlock || e.offset % kBlock) {
      nvram_->release(e.slot);
      continue;
    }
    uint64_t block = e.offset / kBlock;
    if (HeldCopy* held = held_.find(e.vdisk, block)) {
      bool newer = e.epoch > held->epoch || (e.epoch == held->epoch && e.seq > held->seq);
      nvram_->release(newer ? held->slot : e.slot);
      if (!newer) continue;
    }
    held_.put(e.vdisk, block, {e.slot, e.origin, e.seq, e.epoch});
    if (e.origin == self_) next_seq_ = std::max(next_seq_, e.seq + 1);
  }
  // Above every number the last process used, not only those of the
  // entries it left: the partner may hold copies of versions it destaged
  // (their release not sent yet), and a copy numbered lower than the one it
  // holds would be taken for an older version and dropped.
  next_seq_ = std::max(next_seq_, nvram_->sequence_floor());
}

// Numbers are taken from a range reserved in the NVRAM area first, so a
// restart never numbers a write below one sent before it.
uint64_t CacheFacility::take_seq() {
  constexpr uint64_t kReserve = uint64_t{1} << 16;
  if (next_seq_ >= seq_reserved_) {
    seq_reserved_ = next_seq_ + kReserve;
    nvram_->set_sequence_floor(seq_reserved_);
  }
  return next_seq_++;
}

// The batches still held (by flights, or by a link) let go without
// touching the non-volatile memory, which may be gone first.
CacheFacility::~CacheFacility() { destroying_ = true; }

const VdiskRoute* CacheFacility::route(uint32_t vdisk) const {
  if (!directory_ || !routes_ || !routes_->serving) return nullptr;
  const VdiskRoute* r = routes_->find(vdisk);
  return r && routes_->local(vdisk) ? r : nullptr;
}

CacheMode CacheFacility::mode(uint32_t vdisk) const {
  const VdiskRoute* r = route(vdisk);
  return r ? r->mode : CacheMode::off;
}

std::string CacheFacility::mode_reason(uint32_t vdisk) const {
  if (!directory_) return "no cache memory configured";
  const VdiskRoute* r = routes_ ? routes_->find(vdisk) : nullptr;
  if (!routes_ || !routes_->serving) return "this node is not serving I/O now";
  if (!r) return "no such vdisk";
  if (!routes_->local(vdisk)) {
    if (r->hold) return "taking the vdisk over: " + r->why;
    return r->owner ? "owned by node " + std::to_string(r->owner) : r->why;
  }
  return r->why;
}

void CacheFacility::submit(IoRequestPtr request) {
  const VolumeLayout* layout = map_ ? map_->find(request->volume) : nullptr;
  const VdiskRoute* r = route(request->volume);
  // A request accepted while this node executed its vdisk, and driven again
  // (after a fill, or a wait for destage) when it no longer does: the back
  // end may be behind this node's dirty blocks, or another node's. It goes
  // back to the forward facility unexecuted (ESTALE), which sends it to the
  // owner, once there is one again if this node serves nothing now.
  // (route() is null for those; the common path pays only that test.)
  if (!r && directory_ && routes_ && routes_->self != 0 && layout &&
      (!routes_->serving || routes_->find(request->volume))) {
    complete(std::move(request), ESTALE);
    return;
  }
  // A read-only vdisk: a host's change is refused here, the top of every
  // node's stack below forwarding (a forwarded request enters here too);
  // destage, which goes below, still writes what the cache holds.
  if (layout && layout->read_only && changes_back_end(request->op)) {
    complete(std::move(request), EROFS);
    return;
  }
  uint64_t end = request->offset + request->length;
  // Off, or a request the layers below will refuse: straight on. A flush
  // has nothing to wait for: a completed write is on the back end (write
  // through) or in two nodes' non-volatile memory (write back).
  if (!layout || !r || r->mode == CacheMode::off || request->op == IoOp::flush ||
      request->length == 0 || end < request->offset || end > layout->size_bytes) {
    lower_.submit(std::move(request));
    return;
  }
  if (unpromoted_.count(request->volume)) return stall(std::move(request));
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
    read(std::move(request), first, last);
    return;
  }
  if (changes_back_end(request->op)) {
    ++stats.writes;
    stats.bytes_written += request->length;
    // A write of more than a quarter of the non-volatile memory is written
    // through: one larger than all of it would wait for room forever.
    if (request->op == IoOp::write && r->mode == CacheMode::write_back && nvram_ && mirror_ &&
        last - first + 1 <= nvram_->slots() / 4 &&
        (!layout->thin() ||
         (allocation_ && allocation_->allocated(request->volume, request->offset, request->length))))
      write_back(std::move(request), *r, first, last);
    else
      write_through(std::move(request), first, last);
    return;
  }
  lower_.submit(std::move(request));
}

bool CacheFacility::has_dirty(uint32_t vdisk, uint64_t first, uint64_t last) {
  for (uint64_t b = first; b <= last; ++b) {
    CacheBlock* block = directory_->find(vdisk, b);
    if (block && block->state != CacheBlock::State::clean) return true;
  }
  return false;
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
                            block_data(*block) + (from - b * kBlock));
  }
  stats_.bytes_out_of_cache += request.length;
  return true;
}

// A miss. If a block it touches is dirty, the back end does not have it:
// the missing blocks are filled into the cache and the read is served from
// there. Otherwise it reads through.
void CacheFacility::read(IoRequestPtr request, uint64_t first, uint64_t last) {
  if (has_dirty(request->volume, first, last)) {
    std::vector<uint64_t> blocks;
    for (uint64_t b = first; b <= last; ++b) blocks.push_back(b);
    if (!fill(request, blocks)) stall(std::move(request));
    return;
  }
  pass_down(std::move(request), first, last, Kind::host_read);
}

void CacheFacility::write_through(IoRequestPtr request, uint64_t first, uint64_t last) {
  // A dirty block's destage and this write would race on the back end:
  // the block goes first.
  if (has_dirty(request->volume, first, last)) return stall(std::move(request));
  // The back end is about to change under these blocks; reads meanwhile go
  // to it (a read concurrent with a write may see either).
  directory_->discard_clean(request->volume, first, last);
  taint_overlapping(request->volume, first, last);
  pass_down(std::move(request), first, last, Kind::host_write);
}

void CacheFacility::stall(IoRequestPtr request) {
  ++stats_.waits;
  stalled_.push_back(std::move(request));
}

void CacheFacility::resume_stalled(bool all) {
  std::deque<IoRequestPtr> again;
  again.swap(stalled_);
  while (!again.empty()) {
    IoRequestPtr r = std::move(again.front());
    again.pop_front();
    room_stall_ = false;
    submit(std::move(r));
    if (room_stall_ && !all) {
      // Still no room: the rest wait behind it, in order.
      for (auto& rest : again) stalled_.push_back(std::move(rest));
      return;
    }
  }
}

uint32_t CacheFacility::track(Kind kind, uint32_t vdisk, uint64_t first, uint64_t last) {
  uint32_t index;
  if (free_records_.empty()) {
    records_.emplace_back();
    index = static_cast<uint32_t>(records_.size() - 1);
  } else {
    index = free_records_.back();
    free_records_.pop_back();
  }
  InFlight& r = records_[index];
  r.kind = kind;
  r.vdisk = vdisk;
  r.first = first;
  r.last = last;
  // Data read while a write to the same blocks is in flight may be from
  // before or after it: not worth keeping.
  r.tainted = kind != Kind::destage && overlaps_write(vdisk, first, last);
  r.active_pos = static_cast<uint32_t>(active_.size());
  active_.push_back(index);
  return index;
}

void CacheFacility::pass_down(IoRequestPtr request, uint64_t first, uint64_t last, Kind kind) {
  uint32_t index = track(kind, request->volume, first, last);
  request->intercept(this, index);
  lower_.submit(std::move(request));
}

void CacheFacility::io_done(IoRequestPtr request) {
  auto index = static_cast<uint32_t>(request->cookie);
  switch (records_[index].kind) {
    case Kind::fill: return fill_done(index, std::move(request));
    case Kind::destage: return destage_done(index, request->status == 0);
    case Kind::host_read:
    case Kind::host_write: break;
  }
  bool keep = request->status == 0 && !records_[index].tainted;
  release_record(index);
  request->restore();
  if (keep && request->length < kStreamingBytes &&
      (request->op == IoOp::read || request->op == IoOp::write) &&
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
                             clean_data(*block));
    stats_.bytes_into_cache += kBlock;
  }
}

// Reads the blocks of `blocks` that are not cached, each run of adjacent
// ones in one request; once all are in, `request` is submitted again.
bool CacheFacility::fill(IoRequestPtr& request, const std::vector<uint64_t>& blocks) {
  std::vector<uint64_t> missing;
  for (uint64_t b : blocks)
    if (!directory_->find(request->volume, b)) missing.push_back(b);
  if (missing.empty()) {
    submit(std::move(request));
    return true;
  }
  // A fill must fit in the cache with room to spare, or it would evict
  // itself before the request is served.
  if (missing.size() > directory_->counts().capacity / 4 ||
      !directory_->can_take(static_cast<uint32_t>(missing.size())))
    return false;
  ++stats_.fills;
  uint32_t pieces = 0;
  for (size_t i = 0; i < missing.size();) {
    size_t j = i;
    while (j + 1 < missing.size() && missing[j + 1] == missing[j] + 1) ++j;
    IoRequestPtr piece = make_request();
    piece->op = IoOp::read;
    piece->volume = request->volume;
    piece->offset = missing[i] * kBlock;
    piece->length = (j - i + 1) * kBlock;
    piece->buffer = Buffer::allocate(piece->length);
    piece->client = this;
    uint32_t index = track(Kind::fill, request->volume, missing[i], missing[j]);
    records_[index].parent = request;
    piece->cookie = index;
    fills_pending_[request.get()].count++;
    ++pieces;
    lower_.submit(std::move(piece));
    i = j + 1;
  }
  return pieces > 0;
}

void CacheFacility::fill_done(uint32_t index, IoRequestPtr piece) {
  InFlight& rec = records_[index];
  IoRequestPtr parent = std::move(rec.parent);
  bool keep = piece->status == 0 && !rec.tainted;
  uint64_t first = rec.first, last = rec.last;
  release_record(index);
  if (keep && mode(piece->volume) != CacheMode::off && map_ && map_->find(piece->volume)) {
    for (uint64_t b = first; b <= last; ++b) {
      if (directory_->find(piece->volume, b)) continue;  // written meanwhile: newer
      CacheBlock* block = directory_->insert_clean(piece->volume, b);
      if (!block) break;
      piece->buffer->copy_out((b - first) * kBlock, kBlock, clean_data(*block));
      stats_.bytes_into_cache += kBlock;
    }
  }
  auto it = fills_pending_.find(parent.get());
  assert(it != fills_pending_.end());
  if (piece->status != 0) it->second.error = piece->status;
  if (--it->second.count > 0) return;
  int error = it->second.error;
  fills_pending_.erase(it);
  if (error) {
    complete(std::move(parent), error);
    return;
  }
  submit(std::move(parent));  // served from cache now, or filled again
}

bool CacheFacility::overlaps_write(uint32_t vdisk, uint64_t first, uint64_t last) const {
  for (uint32_t i : active_) {
    const InFlight& r = records_[i];
    if (r.kind == Kind::host_write && r.vdisk == vdisk && r.first <= last && first <= r.last)
      return true;
  }
  return false;
}

void CacheFacility::taint_overlapping(uint32_t vdisk, uint64_t first, uint64_t last) {
  for (uint32_t i : active_) {
    InFlight& r = records_[i];
    if (r.vdisk == vdisk && r.first <= last && first <= r.last) r.tainted = true;
  }
}

void CacheFacility::release_record(uint32_t index) {
  uint32_t pos = records_[index].active_pos;
  assert(pos < active_.size() && active_[pos] == index);
  active_[pos] = active_.back();
  records_[active_[pos]].active_pos = pos;
  active_.pop_back();
  records_[index].parent.reset();
  records_[index].run = DestageRun{};
  records_[index].pinned.clear();
  free_records_.push_back(index);
}

void CacheFacility::set_map(std::shared_ptr<const VirtMap> map) {
  auto old = std::move(map_);
  map_ = std::move(map);
  if (!directory_ || !old) return;
  for (const auto& [id, layout] : old->volumes)
    if (!map_->find(id)) drop_vdisk(id);  // the vdisk is gone, and its data with it
}

CacheCounts CacheFacility::counts() const {
  return directory_ ? directory_->counts() : CacheCounts{};
}

uint64_t CacheFacility::capacity_bytes() const {
  return directory_ ? uint64_t{directory_->counts().capacity} * kBlock : 0;
}

CacheVdiskStats CacheFacility::totals() const {
  CacheVdiskStats t;
  for (const auto& [id, s] : vdisks_) {
    t.reads += s.reads;
    t.read_hits += s.read_hits;
    t.writes += s.writes;
    t.bytes_read += s.bytes_read;
    t.bytes_hit += s.bytes_hit;
    t.bytes_written += s.bytes_written;
    t.bytes_destaged += s.bytes_destaged;
  }
  return t;
}

const CacheVdiskStats* CacheFacility::vdisk_stats(uint32_t vdisk) const {
  auto it = vdisks_.find(vdisk);
  return it == vdisks_.end() ? nullptr : &it->second;
}

// For the debug shell: occupancy, the first dirty extents, and the
// partition's counters.
nlohmann::json CacheFacility::inspect() const {
  CacheCounts c = counts();
  nlohmann::json extents = nlohmann::json::array();
  for (const auto& e : dirty_extents(64))
    extents.push_back({{"vdisk", e.vdisk}, {"offset", e.first_block * kCacheBlockBytes},
                       {"bytes", e.blocks * kCacheBlockBytes}});
  return {{"capacity_blocks", c.capacity}, {"clean", c.clean}, {"dirty", c.dirty},
          {"destaging", c.destaging}, {"dirty_extents", extents},
          {"requests_below", in_flight()}, {"destaged_bytes", stats_.destaged_bytes},
          {"partner_copies", stats_.copies_held}, {"mirror_messages", stats_.mirror_batches},
          {"waits", stats_.waits},
          {"link", mirror_ ? mirror_->inspect() : nlohmann::json::object()}};
}

}  // namespace sve

// The cache facility's write-back half: dirty blocks in non-volatile memory,
// their copies on the partner node, the partner's copies held here, and
// what happens to all of them when the route table changes.
#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "cache/cache_facility.hpp"

namespace sve {

namespace {

constexpr uint64_t kBlock = kCacheBlockBytes;
constexpr uint32_t kNoSlot = UINT32_MAX;

}  // namespace

void CacheFacility::write_back(IoRequestPtr request, const VdiskRoute& r, uint64_t first,
                               uint64_t last) {
  uint32_t vdisk = request->volume;
  uint64_t end = request->offset + request->length;
  // A block the write covers only in part needs its other bytes first.
  std::vector<uint64_t> partial;
  if (request->offset % kBlock) partial.push_back(first);
  if (end % kBlock && (partial.empty() || last != first)) partial.push_back(last);
  for (uint64_t b : partial) {
    if (directory_->find(vdisk, b)) continue;
    if (!fill(request, partial)) stall(std::move(request));
    return;
  }
  // Room for every block, and a non-volatile slot for each new version.
  // The clean blocks written in part must not be evicted to make room:
  // their other bytes are needed.
  uint32_t blocks = static_cast<uint32_t>(last - first + 1);
  uint32_t taken = 0;
  for (uint64_t b = first; b <= last; ++b) {
    CacheBlock* block = directory_->find(vdisk, b);
    if (!block || (block->state == CacheBlock::State::clean &&
                   std::find(partial.begin(), partial.end(), b) != partial.end()))
      ++taken;
  }
  if (nvram_->free_slots() < blocks) shed_clean_slots(blocks, vdisk, first, last);
  if (!directory_->can_take(taken) || nvram_->free_slots() < blocks) {
    kick_destage();
    room_stall_ = true;
    return stall(std::move(request));
  }
  taint_overlapping(vdisk, first, last);
  // A write the partner forwarded, of whole blocks: the partner has its
  // data, so the copy goes alone, by reference (the numbers only), at once.
  bool by_reference = request->forwarded_by != 0 && request->forwarded_by == r.partner &&
                      request->op == IoOp::write && request->offset % kBlock == 0 &&
                      end % kBlock == 0 && blocks <= kMaxBlocksByReference;
  // Into the vdisk's open batch for the partner (or a new one).
  MirrorFlight* flight = nullptr;
  uint64_t by_reference_id = 0;
  if (auto open = open_batch_.find(vdisk); !by_reference && open != open_batch_.end()) {
    MirrorFlight& f = mirror_waits_[open->second];
    if (f.batch->epoch == r.epoch && f.partner == r.partner) flight = &f;
  }
  if (!flight) {
    uint64_t id = next_mirror_id_++;
    flight = &mirror_waits_[id];
    flight->batch = new_batch();
    flight->batch->origin = self_;
    flight->batch->vdisk = vdisk;
    flight->batch->epoch = r.epoch;
    flight->partner = r.partner;
    if (by_reference) {
      flight->batch->forward_id = request->forward_id;
      by_reference_id = id;
    } else {
      open_batch_[vdisk] = id;
    }
  }
  MirrorBatch& batch = *flight->batch;
  for (uint64_t b = first; b <= last; ++b) {
    CacheBlock* block = directory_->write(vdisk, b);
    assert(block);
    uint64_t from = std::max(request->offset, b * kBlock);
    uint64_t to = std::min(end, (b + 1) * kBlock);
    store_version(*block, *request, from, to, r.epoch);
    // The copy for the partner is sent from the version's slot, pinned
    // until the batch is gone: no copy of its own.
    uint32_t slot = block_slot_[block->index];
    ++slot_pins_[slot];
    batch.slots.push_back(slot);
    batch.block_data.push_back(static_cast<const char*>(nvram_->data(slot)));
    batch.blocks.push_back(b);
    batch.seqs.push_back(block_seq_[block->index]);
  }
  stats_.mirrored += blocks;
  // The write completes when the partner holds its copy (mirror_done).
  flight->requests.push_back(std::move(request));
  if (by_reference_id) {
    stats_.mirrored_by_reference += blocks;
    send_flight(vdisk, by_reference_id);
  } else if (mirrors_in_flight_[vdisk] < kMaxMirrorsInFlight) {
    send_open_batch(vdisk);
  }
  kick_destage();
}

void CacheFacility::send_open_batch(uint32_t vdisk) {
  auto open = open_batch_.find(vdisk);
  if (open == open_batch_.end()) return;
  uint64_t id = open->second;
  open_batch_.erase(open);
  send_flight(vdisk, id);
}

void CacheFacility::send_flight(uint32_t vdisk, uint64_t id) {
  MirrorFlight& f = mirror_waits_[id];
  f.sent = true;
  ++stats_.mirror_batches;
  ++mirrors_in_flight_[vdisk];
  mirror_->mirror_shared(f.partner, f.batch, id);
}

// A flight leaves: its writes complete with `status`, or wait for the
// drain (`drain`: this node runs the group alone and they are safe once
// destaged).
void CacheFacility::settle_flight(std::unordered_map<uint64_t, MirrorFlight>::iterator it,
                                  int status, bool drain) {
  uint32_t vdisk = it->second.batch->vdisk;
  if (it->second.sent) {
    if (--mirrors_in_flight_[vdisk] == 0) mirrors_in_flight_.erase(vdisk);
  } else {
    open_batch_.erase(vdisk);
  }
  std::vector<IoRequestPtr> requests = std::move(it->second.requests);
  mirror_waits_.erase(it);
  for (auto& request : requests) {
    if (drain)
      drained_.push_back(std::move(request));
    else
      complete(std::move(request), status);
  }
}

// The write's one copy: from the host's buffer into the slot.
void CacheFacility::store_version(CacheBlock& block, const IoRequest& request, uint64_t from,
                                  uint64_t to, uint64_t epoch) {
  auto slot = static_cast<uint32_t>(nvram_->allocate());  // counted free by the caller
  auto* data = static_cast<uint8_t*>(nvram_->writable(slot));
  uint64_t start = block.block * kBlock;
  if (from != start || to != start + kBlock) {
    std::memcpy(data, block_data(block), kBlock);  // a partial write: the rest as it was
    stats_.bytes_into_nvram += kBlock - (to - from);
  }
  request.buffer->copy_out(request.buffer_offset + (from - request.offset), to - from,
                           data + (from - start));
  stats_.bytes_into_nvram += to - from;
  NvramEntry e;
  e.slot = slot;
  e.origin = self_;
  e.vdisk = block.vdisk;
  e.offset = start;
  e.length = kBlock;
  e.seq = take_seq();
  e.epoch = epoch;
  (void)nvram_->commit(slot, e);  // fits by construction
  // The new version counts now; the old one may go.
  forget_slot(block);
  block_slot_[block.index] = slot;
  block_seq_[block.index] = e.seq;
  block_epoch_[block.index] = epoch;
}

const uint8_t* CacheFacility::block_data(const CacheBlock& block) const {
  uint32_t slot = block_slot_[block.index];
  if (slot == kNoSlot) return directory_->data(block);
  return static_cast<const uint8_t*>(nvram_->data(slot));
}

uint8_t* CacheFacility::clean_data(CacheBlock& block) {
  forget_slot(block);
  return directory_->data(block);
}

void CacheFacility::shed_clean_slots(uint32_t want, uint32_t vdisk, uint64_t first,
                                     uint64_t last) {
  uint32_t free = nvram_->free_slots();
  if (free >= want) return;
  directory_->evict_clean_if(want - free, [&](const CacheBlock& b) {
    if (b.vdisk == vdisk && b.block >= first && b.block <= last) return false;
    uint32_t slot = block_slot_[b.index];
    return slot != kNoSlot && !slot_pins_[slot];  // a pinned slot would not be freed now
  });
}

void CacheFacility::forget_slot(const CacheBlock& block) {
  uint32_t& slot = block_slot_[block.index];
  if (slot != kNoSlot && nvram_) release_own_slot(slot);
  slot = kNoSlot;
}

void CacheFacility::release_own_slot(uint32_t slot) {
  if (slot_pins_[slot]) {
    // A batch still sends from it: the entry stops counting now (after a
    // crash it must not come back over a newer version, perhaps destaged
    // already), the slot and its data go when the batch does.
    nvram_->invalidate(slot);
    release_deferred_[slot] = 1;
    return;
  }
  nvram_->release(slot);
}

void CacheFacility::unpin(const std::vector<uint32_t>& slots) {
  if (destroying_) return;
  for (uint32_t slot : slots) {
    if (--slot_pins_[slot] || !release_deferred_[slot]) continue;
    release_deferred_[slot] = 0;
    nvram_->release(slot);
    slots_freed_ = true;
  }
}

std::shared_ptr<MirrorBatch> CacheFacility::new_batch() {
  return std::shared_ptr<MirrorBatch>(new MirrorBatch(), [this](MirrorBatch* b) {
    unpin(b->slots);
    delete b;
  });
}

MirrorBatch gathered(const MirrorBatch& batch) {
  MirrorBatch out = batch;
  out.block_data.clear();
  out.slots.clear();
  out.data.resize(batch.block_data.size() * kBlock);
  for (size_t i = 0; i < batch.block_data.size(); ++i)
    std::memcpy(out.data.data() + i * kBlock, batch.block_data[i], kBlock);
  return out;
}

void CacheFacility::mirror_done(uint64_t id, bool ok) {
  auto it = mirror_waits_.find(id);
  if (it == mirror_waits_.end()) return;  // settled by a route change
  if (!ok) {
    // The partner did not take it: it is busy, full, or gone. Sent again
    // on the next tick; if it is gone, the route change settles it.
    ++stats_.mirror_retries;
    it->second.resend = true;
    it->second.batch->forward_id = 0;  // the partner may not have the data: send it
    return;
  }
  uint32_t vdisk = it->second.batch->vdisk;
  settle_flight(it, 0, false);
  send_open_batch(vdisk);  // what gathered meanwhile
  // Its batch gone, slots it pinned may be free now: writers waiting for
  // one go on.
  if (slots_freed_) {
    slots_freed_ = false;
    resume_stalled();
  }
}

int CacheFacility::store_mirror(const MirrorBatch& batch) {
  if (batch.data.size() != batch.blocks.size() * kBlock || batch.seqs.size() != batch.blocks.size())
    return EINVAL;
  return store_mirror(MirrorCopies{batch.origin, batch.vdisk, batch.epoch, batch.blocks.size(),
                                   batch.blocks.data(), batch.seqs.data(), batch.data.data()});
}

int CacheFacility::store_mirror(const MirrorCopies& batch) {
  if (!nvram_) return EIO;
  const VdiskRoute* r = routes_ ? routes_->find(batch.vdisk) : nullptr;
  if (r && r->epoch > batch.epoch) return ESTALE;  // the sender is behind
  for (size_t i = 0; i < batch.count; ++i) {
    HeldCopy* held = held_.find(batch.vdisk, batch.blocks[i]);
    // A resent older version must not replace a newer one of the same
    // writer; a copy from another writer (the vdisk changed owner) is older.
    if (held && (held->epoch > batch.epoch ||
                 (held->epoch == batch.epoch && held->origin == batch.origin &&
                  held->seq >= batch.seqs[i])))
      continue;
    int64_t slot = nvram_->allocate();
    if (slot < 0) return ENOSPC;
    NvramEntry e;
    e.slot = static_cast<uint32_t>(slot);
    e.origin = batch.origin;
    e.vdisk = batch.vdisk;
    e.offset = batch.blocks[i] * kBlock;
    e.length = kBlock;
    e.seq = batch.seqs[i];
    e.epoch = batch.epoch;
    (void)nvram_->store(e.slot, e, batch.data + i * kBlock);
    stats_.bytes_into_nvram += kBlock;
    if (held) {
      nvram_->release(held->slot);
      *held = {e.slot, e.origin, e.seq, e.epoch};
    } else {
      held_.put(batch.vdisk, batch.blocks[i], {e.slot, e.origin, e.seq, e.epoch});
    }
  }
  stats_.copies_held = held_.size();
  return 0;
}

void CacheFacility::release_mirror(uint32_t origin, uint32_t vdisk,
                                   std::span<const uint64_t> blocks,
                                   std::span<const uint64_t> seqs) {
  for (size_t i = 0; i < blocks.size() && i < seqs.size(); ++i) {
    HeldCopy* held = held_.find(vdisk, blocks[i]);
    if (!held || held->origin != origin || held->seq > seqs[i]) continue;
    if (nvram_) nvram_->release(held->slot);
    held_.erase(vdisk, blocks[i]);
  }
  stats_.copies_held = held_.size();
}

void CacheFacility::set_routes(std::shared_ptr<const RouteTable> routes) {
  routes_ = std::move(routes);
  if (!directory_) return;
  // Clean blocks are valid only while this node owns their vdisk without a
  // break: without a lease, another node may own it and write it meanwhile.
  // Dirty blocks and copies are decided only by the next serving table
  // (their epochs say whether another node took over); destage stops
  // meanwhile (kick_destage).
  if (!routes_->serving) {
    if (map_)
      for (const auto& [id, layout] : map_->volumes) forget_clean(id);
    last_serving_.reset();
    // Nothing waiting here would ever go on (no destage, no partner to
    // answer for sure): it goes back up unacknowledged (ESTALE), and the
    // forward facility sends it to whichever node owns its vdisk once the
    // cluster has formed again (as a host would retry it; EIO if none does
    // in time). Dirty blocks and copies stay for the next table to judge.
    std::vector<IoRequestPtr> failed(std::make_move_iterator(stalled_.begin()),
                                     std::make_move_iterator(stalled_.end()));
    stalled_.clear();
    for (auto& r : drained_) failed.push_back(std::move(r));
    drained_.clear();
    while (!mirror_waits_.empty()) {
      auto it = mirror_waits_.begin();
      for (auto& r : it->second.requests) failed.push_back(std::move(r));
      it->second.requests.clear();
      settle_flight(it, ESTALE, false);
    }
    for (auto& r : failed) complete(std::move(r), ESTALE);
    return;
  }
  // Owned elsewhere now, not cached, or its group's state moved on since
  // the last table: clean blocks may be stale.
  if (map_) {
    for (const auto& [id, layout] : map_->volumes) {
      const VdiskRoute* now = routes_->find(id);
      const VdiskRoute* before = last_serving_ ? last_serving_->find(id) : nullptr;
      bool same = now && before && before->owner == now->owner && before->epoch == now->epoch;
      if (mode(id) == CacheMode::off || !same) forget_clean(id);
    }
  }
  last_serving_ = routes_;
  reconcile_copies();
  // Writes still waiting for their partner copy.
  std::vector<uint64_t> settle;
  for (auto& [id, flight] : mirror_waits_) {
    const VdiskRoute* held = routes_->find(flight.batch->vdisk);
    if (held && held->owner == self_ && held->hold) continue;  // decided once committed
    const VdiskRoute* r = route(flight.batch->vdisk);
    // (Written through for a while with its partner still named, for a
    // point-in-time copy being prepared: the copy still counts.)
    if (r && r->epoch == flight.batch->epoch &&
        (r->mode == CacheMode::write_back || (r->partner && r->solo == 0)))
      continue;
    settle.push_back(id);  // the copy would not count any more
  }
  for (uint64_t id : settle) {
    auto it = mirror_waits_.find(id);
    const VdiskRoute* r = route(it->second.batch->vdisk);
    // Alone now: this node's own copies count, and the writes are safe
    // once destaged. Otherwise another node took the vdisk over with the
    // copies it holds, which may not include these: never acknowledged,
    // they go to the owner now (ESTALE: the forward facility sends them).
    bool alone = r && r->solo == self_;
    settle_flight(it, ESTALE, alone);
  }
  resume_stalled(true);
  complete_drained();
  kick_destage();
}

// Clean blocks of `vdisk` may be stale: dropped, and so is what the reads
// and fills in flight bring back (read before another node's writes, they
// would otherwise be kept as clean copies once they complete).
void CacheFacility::forget_clean(uint32_t vdisk) {
  directory_->drop(vdisk, false);
  taint_overlapping(vdisk, 0, UINT64_MAX);
}

// Sorts every non-volatile copy by the current table: dirty blocks and
// held copies that no longer count are freed (the node that took over
// destaged them, and the back end may hold newer data by now); held copies
// of vdisks this node now owns become its dirty blocks.
void CacheFacility::reconcile_copies() {
  if (map_) {
    for (const auto& [id, layout] : map_->volumes) {
      const VdiskRoute* r = routes_->find(id);
      for (CacheBlock* b : directory_->blocks_of(id)) {
        if (b->state != CacheBlock::State::dirty) continue;
        if (r && copy_counts(*r, self_, block_epoch_[b->index])) continue;
        ++stats_.discarded;
        drop_vdisk(id);
        break;
      }
    }
  }
  unpromoted_.clear();
  held_.erase_if([&](uint32_t vdisk, uint64_t block, const HeldCopy& copy) {
    const VdiskRoute* r = routes_->find(vdisk);
    if (!r || !copy_counts(*r, self_, copy.epoch) || !map_ || !map_->find(vdisk)) {
      if (nvram_) nvram_->release(copy.slot);
      ++stats_.discarded;
      return true;
    }
    // Ours to destage: a vdisk this node caches, or one it hands over.
    bool ours = (routes_->local(vdisk) && r->mode != CacheMode::off) || r->handover_by == self_;
    if (!ours) return false;  // the partner's copy of a vdisk it owns: kept for it
    CacheBlock* existing = directory_->find(vdisk, block);
    if (existing && existing->state != CacheBlock::State::clean) {
      nvram_->release(copy.slot);  // this node wrote it since: newer
      return true;
    }
    CacheBlock* b = directory_->write(vdisk, block);
    if (!b) {
      unpromoted_.insert(vdisk);  // no room yet: its requests wait
      return false;
    }
    forget_slot(*b);  // the copy's slot holds its data from now on
    block_slot_[b->index] = copy.slot;
    block_seq_[b->index] = copy.seq;
    block_epoch_[b->index] = copy.epoch;
    ++stats_.promoted;
    return true;
  });
  stats_.copies_held = held_.size();
}

void CacheFacility::drop_vdisk(uint32_t vdisk) {
  directory_->drop(vdisk, true);  // the blocks' slots go with them (on_free)
  held_.erase_vdisk(vdisk, [&](const HeldCopy& copy) {
    if (nvram_) nvram_->release(copy.slot);
  });
  stats_.copies_held = held_.size();
  vdisks_.erase(vdisk);
}

std::vector<CacheFacility::DirtyExtent> CacheFacility::dirty_extents(size_t max) const {
  std::vector<DirtyExtent> out;
  if (!directory_ || !map_) return out;
  for (const auto& [id, layout] : map_->volumes) {
    for (CacheBlock* b : directory_->blocks_of(id)) {
      if (b->state == CacheBlock::State::clean) continue;
      if (!out.empty() && out.back().vdisk == id &&
          out.back().first_block + out.back().blocks == b->block) {
        ++out.back().blocks;
        continue;
      }
      if (out.size() == max) return out;
      out.push_back({id, b->block, 1});
    }
  }
  return out;
}

uint64_t CacheFacility::dirty_blocks(uint32_t vdisk) const {
  if (!directory_ || !routes_) return 0;
  uint64_t n = 0;
  // The controller asks every few heartbeats: no walk over a vdisk's cached
  // blocks when nothing in the partition is dirty.
  CacheCounts c = directory_->counts();
  if (c.dirty + c.destaging > 0)
    for (CacheBlock* b : directory_->blocks_of(vdisk))
      if (b->state != CacheBlock::State::clean) ++n;
  const VdiskRoute* r = routes_->find(vdisk);
  bool ours = routes_->local(vdisk) || (r && r->handover_by == self_);
  if (ours) n += held_.count(vdisk);  // copies still to take over
  return n;
}

uint64_t CacheFacility::held_blocks(uint32_t vdisk) const {
  return held_.count(vdisk);
}

uint64_t CacheFacility::dirty_blocks_of_group(uint32_t group) const {
  if (!directory_ || !routes_ || !map_) return 0;
  uint64_t n = 0;
  for (const auto& [id, layout] : map_->volumes) {
    const VdiskRoute* r = routes_->find(id);
    if (r && r->group == group) n += dirty_blocks(id);
  }
  return n;
}

}  // namespace sve

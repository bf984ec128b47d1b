// The cache facility's destage: dirty blocks to the back end in the
// background, and everything that waits for it (writers waiting for room,
// reads and writes waiting for a dirty block to be destaged, writes that
// became safe only once on the back end).
#include <cerrno>

#include "cache/cache_facility.hpp"

namespace sve {

namespace {

constexpr uint64_t kBlock = kCacheBlockBytes;
constexpr unsigned kMaxDestages = 8;       // runs in flight at most
constexpr uint32_t kMaxRunBlocks = 64;     // 256 KiB per back-end write
constexpr uint32_t kNoSlot = UINT32_MAX;

}  // namespace

// Starts as many destage runs as the fill level asks for. Only while this
// node serves: without a lease, another node may own the data by now.
void CacheFacility::kick_destage() {
  if (!directory_ || !routes_ || !routes_->serving || (gate_ && !gate_->open())) return;
  // Requests waiting for a block to be destaged, or writes that complete
  // only once everything is (after a takeover), make it urgent.
  unsigned want = !stalled_.empty() || !drained_.empty() || flushing_
                      ? kMaxDestages
                      : destage_concurrency(directory_->counts(), kMaxDestages,
                                            directory_->oldest_dirty_age_ms());
  while (destages_ < want) {
    DestageRun run = directory_->next_destage(kMaxRunBlocks);
    if (run.blocks.empty()) break;
    iovec segments[kMaxRunBlocks];
    std::vector<uint32_t> pinned;
    for (size_t i = 0; i < run.blocks.size(); ++i) {
      const CacheBlock& b = *run.blocks[i];
      segments[i] = {const_cast<uint8_t*>(block_data(b)), kBlock};
      // A version's slot stays put while the back end reads it, even if
      // the block is written meanwhile (the new version has its own slot).
      if (uint32_t slot = block_slot_[b.index]; slot != kNoSlot) {
        ++slot_pins_[slot];
        pinned.push_back(slot);
      }
    }
    IoRequestPtr request = make_request();
    request->op = IoOp::write;
    request->volume = run.vdisk;
    request->offset = run.first_block * kBlock;
    request->length = run.blocks.size() * kBlock;
    // Straight from the cache's memory: a block written meanwhile stays
    // dirty and is destaged again.
    request->buffer = Buffer::borrow(segments, static_cast<unsigned>(run.blocks.size()));
    request->client = this;
    uint32_t index = track(Kind::destage, run.vdisk, run.first_block,
                           run.first_block + run.blocks.size() - 1);
    records_[index].run = std::move(run);
    records_[index].pinned = std::move(pinned);
    request->cookie = index;
    ++destages_;
    lower_.submit(std::move(request));
  }
}

void CacheFacility::destage_done(uint32_t index, bool ok) {
  DestageRun run = std::move(records_[index].run);
  std::vector<uint32_t> pinned = std::move(records_[index].pinned);
  release_record(index);
  --destages_;
  std::vector<uint64_t> epochs;
  for (CacheBlock* b : run.blocks) epochs.push_back(block_epoch_[b->index]);
  directory_->destage_done(run, ok);
  if (ok) {
    ++stats_.destage_runs;
    uint64_t bytes = run.blocks.size() * kBlock;
    stats_.destaged_bytes += bytes;
    rate_window_bytes_ += bytes;
    if (auto v = vdisks_.find(run.vdisk); v != vdisks_.end()) {
      v->second.bytes_destaged += bytes;
      v->second.window_destaged += bytes;
    }
    // Blocks now clean: their copies, here and on the partner, may go.
    std::vector<uint64_t> blocks, seqs;
    for (size_t i = 0; i < run.blocks.size(); ++i) {
      CacheBlock* b = run.blocks[i];
      if (b->state != CacheBlock::State::clean) continue;  // written meanwhile
      blocks.push_back(b->block);
      seqs.push_back(block_seq_[b->index]);
      // The slot stays as the clean block's data (freed when the block
      // is), but no longer counts: after a crash it must not come back.
      if (uint32_t slot = block_slot_[b->index]; slot != kNoSlot) nvram_->invalidate(slot);
    }
    const VdiskRoute* r = route(run.vdisk);
    if (r && r->partner && mirror_ && !blocks.empty()) {
      auto& [b, s] = releases_[{r->partner, run.vdisk}];
      b.insert(b.end(), blocks.begin(), blocks.end());
      s.insert(s.end(), seqs.begin(), seqs.end());
      if (b.size() >= 1024) flush_releases();
    }
  } else {
    ++stats_.destage_errors;
    destage_failed_ = true;  // tried again on the next tick
  }
  // A run issued before this node lost the vdisk (its lease ran out while
  // it was in flight): what it leaves clean may be older than what the new
  // owner wrote since, and must not be served if the vdisk comes back.
  if (nvram_ && routes_) {
    const VdiskRoute* r = routes_->find(run.vdisk);
    for (size_t i = 0; i < run.blocks.size(); ++i) {
      CacheBlock* b = run.blocks[i];
      if (b->state != CacheBlock::State::clean) continue;
      if (routes_->serving && r && copy_counts(*r, self_, epochs[i])) continue;
      directory_->discard_clean(run.vdisk, b->block, b->block);
    }
  }
  // Blocks of a vdisk deleted, or taken over elsewhere, while in flight.
  if (!map_ || !map_->find(run.vdisk)) drop_vdisk(run.vdisk);
  unpin(pinned);
  slots_freed_ = false;  // those waiting for one are resumed now anyway
  resume_stalled();
  complete_drained();
  if (ok) kick_destage();
}

// The partner may free its copies of what was destaged: gathered, and sent
// every tick (or when many) rather than one message per destage.
void CacheFacility::flush_releases() {
  for (auto& [key, lists] : releases_)
    if (!lists.first.empty()) mirror_->release(key.first, key.second, lists.first, lists.second);
  releases_.clear();
}

// Writes that were waiting for their partner copy when this node began to
// run their group alone: safe once nothing is dirty any more.
void CacheFacility::complete_drained() {
  if (drained_.empty()) return;
  CacheCounts c = counts();
  if (c.dirty + c.destaging > 0 || !unpromoted_.empty()) return;
  std::vector<IoRequestPtr> done;
  done.swap(drained_);
  for (auto& r : done) complete(std::move(r), 0);
}

void CacheFacility::tick(uint64_t now_ms) {
  if (!directory_) return;
  directory_->set_now(now_ms);
  for (auto& [id, flight] : mirror_waits_) {
    if (!flight.resend) continue;
    flight.resend = false;
    mirror_->mirror_shared(flight.partner, flight.batch, id);
  }
  flush_releases();
  if (!unpromoted_.empty() && routes_ && routes_->serving) reconcile_copies();
  if (destage_failed_) destage_failed_ = false;
  kick_destage();
  resume_stalled();
  if (rate_window_start_ == 0) rate_window_start_ = now_ms;
  if (now_ms - rate_window_start_ >= 1000) {
    uint64_t elapsed = now_ms - rate_window_start_;
    destage_rate_ = rate_window_bytes_ * 1000 / elapsed;
    rate_window_bytes_ = 0;
    for (auto& [id, v] : vdisks_) {
      v.destage_rate = v.window_destaged * 1000 / elapsed;
      v.window_destaged = 0;
    }
    rate_window_start_ = now_ms;
  }
}

}  // namespace sve

#pragma once
// The non-volatile copies a cache partition holds that are not (or not
// yet) its dirty blocks: the partner's, or this node's recovered after a
// restart. Looked up by (vdisk, block) for every copy the partner sends
// and every release: one open-addressed table (linear probing, deletion by
// shifting back, so no tombstones), grown by doubling and never shrunk, so
// that a partition in steady state allocates nothing per copy (a node-based
// map allocated a node for each and chased a pointer or two on each
// lookup). What the controller and a takeover ask for is one vdisk's
// copies: counted per vdisk beside the table; dropping a vdisk's copies
// walks the whole table (rare: a takeover, a vdisk deleted).
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sve {

struct HeldCopy {
  uint32_t slot = 0;
  uint32_t origin = 0;  // versions compare only between copies of one origin
  uint64_t seq = 0;
  uint64_t epoch = 0;
};

class HeldCopies {
 public:
  HeldCopy* find(uint32_t vdisk, uint64_t block) {
    if (size_ == 0) return nullptr;
    for (size_t i = home(vdisk, block);; i = (i + 1) & mask_) {
      Entry& e = entries_[i];
      if (!e.used) return nullptr;
      if (e.vdisk == vdisk && e.block == block) return &e.copy;
    }
  }
  // Inserts, or replaces the copy of that block.
  void put(uint32_t vdisk, uint64_t block, const HeldCopy& copy) {
    if ((size_ + 1) * 2 > entries_.size()) grow();
    size_t i = home(vdisk, block);
    for (; entries_[i].used; i = (i + 1) & mask_) {
      if (entries_[i].vdisk == vdisk && entries_[i].block == block) {
        entries_[i].copy = copy;
        return;
      }
    }
    entries_[i] = Entry{block, vdisk, true, copy};
    ++size_;
    ++per_vdisk_[vdisk];
  }
  void erase(uint32_t vdisk, uint64_t block) {
    if (size_ == 0) return;
    for (size_t i = home(vdisk, block);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (!e.used) return;
      if (e.vdisk == vdisk && e.block == block) return erase_at(i);
    }
  }
  size_t count(uint32_t vdisk) const {
    auto v = per_vdisk_.find(vdisk);
    return v == per_vdisk_.end() ? 0 : v->second;
  }
  size_t size() const { return size_; }
  // Calls `drop(vdisk, block, copy)` once for every copy; those it answers
  // true for are erased (after the walk: erasing moves entries).
  template <class Drop>
  void erase_if(Drop drop) {
    std::vector<std::pair<uint32_t, uint64_t>> dropped;
    for (Entry& e : entries_)
      if (e.used && drop(e.vdisk, e.block, e.copy)) dropped.emplace_back(e.vdisk, e.block);
    for (const auto& [vdisk, block] : dropped) erase(vdisk, block);
  }
  // Erases every copy of `vdisk`, each passed to `gone` first.
  template <class Gone>
  void erase_vdisk(uint32_t vdisk, Gone gone) {
    if (count(vdisk) == 0) return;
    erase_if([&](uint32_t v, uint64_t, const HeldCopy& copy) {
      if (v != vdisk) return false;
      gone(copy);
      return true;
    });
  }

 private:
  struct Entry {
    uint64_t block = 0;
    uint32_t vdisk = 0;
    bool used = false;
    HeldCopy copy;
  };

  size_t home(uint32_t vdisk, uint64_t block) const {
    // (A multiplicative mix: random blocks and runs of adjacent ones both
    // spread over the table.)
    uint64_t h = (block ^ (uint64_t{vdisk} << 40)) * 0x9e3779b97f4a7c15ull;
    return static_cast<size_t>(h ^ (h >> 29)) & mask_;
  }

  void grow() {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(old.empty() ? 1024 : old.size() * 2, Entry{});
    mask_ = entries_.size() - 1;
    for (const Entry& e : old) {
      if (!e.used) continue;
      size_t i = home(e.vdisk, e.block);
      while (entries_[i].used) i = (i + 1) & mask_;
      entries_[i] = e;
    }
  }

  // Empties slot `hole`, moving back each later entry of its run that may
  // sit there (one whose home is not between the hole and it, cyclically).
  void erase_at(size_t hole) {
    const uint32_t vdisk = entries_[hole].vdisk;
    if (auto v = per_vdisk_.find(vdisk); v != per_vdisk_.end() && --v->second == 0)
      per_vdisk_.erase(v);
    --size_;
    for (size_t i = (hole + 1) & mask_; entries_[i].used; i = (i + 1) & mask_) {
      const size_t want = home(entries_[i].vdisk, entries_[i].block);
      // Stays if its home lies cyclically in (hole, i].
      const bool stays = hole <= i ? (want > hole && want <= i) : (want > hole || want <= i);
      if (stays) continue;
      entries_[hole] = entries_[i];
      hole = i;
    }
    entries_[hole] = Entry{};
  }

  std::vector<Entry> entries_;  // a power of two long, at most half used
  size_t mask_ = 0;
  size_t size_ = 0;
  std::unordered_map<uint32_t, size_t> per_vdisk_;  // copies held of each vdisk
};

}  // namespace sve

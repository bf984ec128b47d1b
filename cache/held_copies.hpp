#pragma once
// The non-volatile copies a cache partition holds that are not (or not
// yet) its dirty blocks: the partner's, or this node's recovered after a
// restart. Looked up by (vdisk, block) for every copy the partner sends
// and every release, so by hash, per vdisk (what the controller and a
// takeover ask for is one vdisk's copies).
#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace sve {

struct HeldCopy {
  uint32_t slot = 0;
  uint32_t origin = 0;  // versions compare only between copies of one origin
  uint64_t seq = 0;
  uint64_t epoch = 0;
};

class HeldCopies {
 public:
  using Blocks = std::unordered_map<uint64_t, HeldCopy>;

  HeldCopy* find(uint32_t vdisk, uint64_t block) {
    auto v = vdisks_.find(vdisk);
    if (v == vdisks_.end()) return nullptr;
    auto it = v->second.find(block);
    return it == v->second.end() ? nullptr : &it->second;
  }
  // Inserts, or replaces the copy of that block.
  void put(uint32_t vdisk, uint64_t block, const HeldCopy& copy) {
    auto [it, inserted] = vdisks_[vdisk].insert_or_assign(block, copy);
    if (inserted) ++size_;
  }
  void erase(uint32_t vdisk, uint64_t block) {
    auto v = vdisks_.find(vdisk);
    if (v != vdisks_.end()) size_ -= v->second.erase(block);
  }
  size_t count(uint32_t vdisk) const {
    auto v = vdisks_.find(vdisk);
    return v == vdisks_.end() ? 0 : v->second.size();
  }
  size_t size() const { return size_; }
  // Calls `drop(vdisk, block, copy)` for every copy; those it answers true
  // for are erased.
  template <class Drop>
  void erase_if(Drop drop) {
    for (auto& [vdisk, blocks] : vdisks_) {
      for (auto it = blocks.begin(); it != blocks.end();) {
        if (drop(vdisk, it->first, it->second)) {
          it = blocks.erase(it);
          --size_;
        } else {
          ++it;
        }
      }
    }
  }
  // Erases every copy of `vdisk`, each passed to `gone` first.
  template <class Gone>
  void erase_vdisk(uint32_t vdisk, Gone gone) {
    auto v = vdisks_.find(vdisk);
    if (v == vdisks_.end()) return;
    for (auto& [block, copy] : v->second) gone(copy);
    size_ -= v->second.size();
    vdisks_.erase(v);
  }

 private:
  std::unordered_map<uint32_t, Blocks> vdisks_;
  size_t size_ = 0;
};

}  // namespace sve

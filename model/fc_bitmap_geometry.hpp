#pragma once
// Where a point-in-time copy mapping keeps its copied-grain bitmap on the
// back end (docs/flashcopy.md): a hidden vdisk of the source's pool, as
// pages of 4 KiB, each in two slots written in turn (a torn write leaves
// the other). A page holds a 32-byte header and 32,512 grains' bits.
// An incremental mapping's vdisk has a second plane after the first, as
// many pages: the grains written during its start (its next refresh
// copies them again).
#include <cstdint>

namespace sve {

inline constexpr uint64_t kFcPageBytes = 4096;
inline constexpr uint64_t kFcPageHeaderBytes = 32;
inline constexpr uint64_t kFcGrainsPerPage = (kFcPageBytes - kFcPageHeaderBytes) * 8;

inline uint64_t fc_grains(uint64_t size_bytes, uint64_t grain_bytes) {
  return grain_bytes ? (size_bytes + grain_bytes - 1) / grain_bytes : 0;
}
inline uint64_t fc_bitmap_pages(uint64_t grains) {
  return grains ? (grains + kFcGrainsPerPage - 1) / kFcGrainsPerPage : 1;
}
// The bytes of its slots: page i in slots 2i and 2i+1.
inline uint64_t fc_bitmap_bytes(uint64_t grains) {
  return fc_bitmap_pages(grains) * 2 * kFcPageBytes;
}
// The second plane starts where the first ends.
inline uint64_t fc_changed_plane_offset(uint64_t grains) { return fc_bitmap_bytes(grains); }
inline uint64_t fc_bitmap_vdisk_bytes(uint64_t grains, bool incremental) {
  return fc_bitmap_bytes(grains) * (incremental ? 2 : 1);
}

}  // namespace sve

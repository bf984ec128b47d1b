#pragma once
// Where a thin vdisk's map lives in its real capacity and what it costs
// (the map itself: thin/thin_map.hpp; docs/thin.md). Here, below the
// facilities, because creating a thin vdisk must know how many extents its
// map needs.
#include <cstdint>

namespace sve {

inline constexpr uint32_t kThinPageBytes = 4096;
inline constexpr uint32_t kThinPageHeader = 32;
inline constexpr uint32_t kThinEntriesPerPage = (kThinPageBytes - kThinPageHeader) / 4;
inline constexpr uint32_t kThinMagic = 0x4d545653;  // "SVTM"
inline constexpr uint32_t kDefaultGrainBytes = 256 * 1024;
inline constexpr uint32_t kMinGrainBytes = 32 * 1024;
inline constexpr uint32_t kMaxGrainBytes = 256 * 1024;

// Where a thin vdisk's map lives and what it costs.
struct ThinGeometry {
  uint64_t virtual_bytes = 0;
  uint32_t grain_bytes = 0;
  uint64_t virtual_grains() const { return (virtual_bytes + grain_bytes - 1) / grain_bytes; }
  uint32_t pages() const {
    return static_cast<uint32_t>((virtual_grains() + kThinEntriesPerPage - 1) /
                                 kThinEntriesPerPage);
  }
  // The map's slots, rounded up to whole grains: physical grain 0 starts here.
  uint64_t meta_bytes() const {
    uint64_t slots = uint64_t{pages()} * 2 * kThinPageBytes;
    return (slots + grain_bytes - 1) / grain_bytes * grain_bytes;
  }
  uint64_t slot_offset(uint32_t page, unsigned slot) const {
    return (uint64_t{page} * 2 + slot) * kThinPageBytes;
  }
  // Physical grains a real capacity of `real_bytes` holds after the map.
  uint32_t data_grains(uint64_t real_bytes) const {
    return real_bytes <= meta_bytes()
               ? 0
               : static_cast<uint32_t>((real_bytes - meta_bytes()) / grain_bytes);
  }
  uint64_t grain_offset(uint32_t pgrain) const {
    return meta_bytes() + uint64_t{pgrain} * grain_bytes;
  }
};

}  // namespace sve

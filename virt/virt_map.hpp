#pragma once
// The data path's read-only view of the virtualization configuration: for
// each vdisk, where each of its extents lives in mdisk byte offsets. Built
// from the configuration and published as an immutable snapshot, so the
// virtualization facility never shares mutable state with the config path.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sve {

struct NodeConfig;

struct PhysicalExtent {
  uint32_t mdisk_id = 0;
  uint64_t mdisk_offset = 0;  // byte offset of the extent on the device
};

struct VolumeLayout {
  uint32_t id = 0;
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t extent_bytes = 0;
  std::vector<PhysicalExtent> extents;
  std::vector<uint32_t> mdisks;  // distinct mdisks it touches, for flush
};

struct VirtMap {
  std::unordered_map<uint32_t, VolumeLayout> volumes;
  const VolumeLayout* find(uint32_t id) const;
  const VolumeLayout* find(const std::string& name) const;
};

// One contiguous physical piece of a virtual range.
struct Piece {
  uint32_t mdisk_id = 0;
  uint64_t mdisk_offset = 0;
  uint64_t length = 0;
  uint64_t request_offset = 0;  // offset of this piece within the request
};

// Cuts [offset, offset+length) into pieces at extent boundaries, merging
// neighbours that are also adjacent on the same mdisk. The range must lie
// inside the volume.
std::vector<Piece> split_range(const VolumeLayout& layout, uint64_t offset,
                               uint64_t length);

std::shared_ptr<const VirtMap> build_virt_map(const NodeConfig& config);

}  // namespace sve

#pragma once
// The label written at the start of every managed disk. It lets the node
// recognise its mdisks after a restart or a change of path, and refuse a
// device that belongs to another configuration instead of overwriting it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hw/device/block_device.hpp"
#include "util/result.hpp"

namespace sve {

// Bytes reserved at the front of each mdisk for the label (and room for later
// on-disk structures such as the quorum area). Extents start after it.
inline constexpr uint64_t kMdiskReservedBytes = 1024 * 1024;
inline constexpr size_t kMdiskLabelBytes = 4096;

struct MdiskLabel {
  std::string mdisk_uuid;
  std::string config_uuid;  // identity of the configuration that owns it
  std::string name;
  uint64_t data_bytes = 0;  // usable bytes after the reserved area
};

enum class LabelState { blank, valid, corrupt };

struct LabelReadResult {
  LabelState state = LabelState::blank;
  MdiskLabel label;
};

std::vector<char> encode_label(const MdiskLabel& label);
LabelReadResult decode_label(const char* block, size_t size);

Result<LabelReadResult> read_label(const BlockDevice& device);
Status write_label(const BlockDevice& device, const MdiskLabel& label);

}  // namespace sve

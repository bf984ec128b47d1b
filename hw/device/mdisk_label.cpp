#include "hw/device/mdisk_label.hpp"

#include <cstring>

#include <msgpack.hpp>

#include "util/crc.hpp"
#include "util/bounded_unpack.hpp"

namespace sve {
namespace {

constexpr char kMagic[8] = {'S', 'V', 'E', 'M', 'D', 'S', 'K', '1'};
// Layout: magic[8] | u32 payload length | u32 crc32c(payload) | payload.
constexpr size_t kHeaderBytes = 16;

struct LabelWire {
  std::string mdisk_uuid, config_uuid, name;
  uint64_t data_bytes = 0;
  MSGPACK_DEFINE_MAP(mdisk_uuid, config_uuid, name, data_bytes);
};

}  // namespace

std::vector<char> encode_label(const MdiskLabel& label) {
  LabelWire wire{label.mdisk_uuid, label.config_uuid, label.name, label.data_bytes};
  msgpack::sbuffer payload;
  msgpack::pack(payload, wire);
  std::vector<char> block(kMdiskLabelBytes, 0);
  assert(payload.size() + kHeaderBytes <= block.size());
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = crc32c(payload.data(), payload.size());
  std::memcpy(block.data(), kMagic, 8);
  std::memcpy(block.data() + 8, &len, 4);
  std::memcpy(block.data() + 12, &crc, 4);
  std::memcpy(block.data() + kHeaderBytes, payload.data(), payload.size());
  return block;
}

LabelReadResult decode_label(const char* block, size_t size) {
  LabelReadResult out;
  if (size < kHeaderBytes || std::memcmp(block, kMagic, 8) != 0) return out;
  out.state = LabelState::corrupt;
  uint32_t len = 0, crc = 0;
  std::memcpy(&len, block + 8, 4);
  std::memcpy(&crc, block + 12, 4);
  if (len > size - kHeaderBytes) return out;
  if (crc32c(block + kHeaderBytes, len) != crc) return out;
  try {
    auto handle = bounded_unpack(block + kHeaderBytes, len);
    auto wire = handle.get().as<LabelWire>();
    out.label = {wire.mdisk_uuid, wire.config_uuid, wire.name, wire.data_bytes};
    out.state = LabelState::valid;
  } catch (const std::exception&) {
    // stays corrupt
  }
  return out;
}

Result<LabelReadResult> read_label(const BlockDevice& device) {
  if (device.size_bytes() < kMdiskLabelBytes) return LabelReadResult{};
  std::vector<char> block(kMdiskLabelBytes);
  if (auto st = device.read_at(block.data(), block.size(), 0); !st)
    return st.error();
  return decode_label(block.data(), block.size());
}

Status write_label(const BlockDevice& device, const MdiskLabel& label) {
  auto block = encode_label(label);
  if (auto st = device.write_at(block.data(), block.size(), 0); !st) return st;
  return device.sync();
}

}  // namespace sve

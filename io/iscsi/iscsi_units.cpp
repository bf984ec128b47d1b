#include "io/iscsi/iscsi_units.hpp"

#include <cctype>

#include "util/crc.hpp"

namespace sve::iscsi {
namespace {

// The hex digits of the configuration's identity (a UUID, dashes left out),
// lower case; zeros when it has none (a test's map).
std::string identity_digits(const VirtMap& map, size_t count) {
  std::string out;
  for (char c : map.config_uuid)
    if (std::isxdigit(static_cast<unsigned char>(c)) && out.size() < count)
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  out.resize(count, '0');
  return out;
}

scsi::AccessState access_state_of(PathState s) {
  switch (s) {
    case PathState::optimized: return scsi::AccessState::optimized;
    case PathState::non_optimized: return scsi::AccessState::non_optimized;
    case PathState::transitioning: return scsi::AccessState::transitioning;
    case PathState::unavailable: break;
  }
  return scsi::AccessState::unavailable;
}

}  // namespace

scsi::LogicalUnit logical_unit_of(const VirtMap& map, const VolumeLayout& vdisk, bool read_only) {
  scsi::LogicalUnit lu;
  lu.volume = vdisk.id;
  lu.blocks = vdisk.size_bytes / scsi::kBlockBytes;
  lu.read_only = vdisk.read_only || read_only;
  lu.thin = vdisk.thin();
  lu.reservations = vdisk.reservations;
  // 32 hex digits, as the product's vdisk UIDs have: 24 of the
  // configuration's identity, then the vdisk's id.
  static const char* kHex = "0123456789abcdef";
  lu.serial = identity_digits(map, 24);
  for (int shift = 28; shift >= 0; shift -= 4) lu.serial.push_back(kHex[vdisk.id >> shift & 0xf]);
  // NAA 3: four bits of type, then 60 locally assigned: 28 from the
  // configuration's identity, 32 of the vdisk's id.
  const uint32_t cluster = crc32c(map.config_uuid.data(), map.config_uuid.size()) & 0x0fffffffu;
  const uint64_t naa = uint64_t{3} << 60 | uint64_t{cluster} << 32 | vdisk.id;
  for (size_t i = 0; i < lu.naa.size(); ++i)
    lu.naa[i] = static_cast<uint8_t>(naa >> (8 * (lu.naa.size() - 1 - i)));
  return lu;
}

uint16_t port_group_of(uint32_t node) { return node ? static_cast<uint16_t>(node) : 1; }

std::vector<Unit> units_of(const VirtMap& map, const std::vector<LunEntry>& luns,
                           const HostPaths* paths) {
  std::vector<Unit> out;
  for (const LunEntry& l : luns) {
    const VolumeLayout* v = map.find(l.vdisk);
    if (!v || v->hidden) continue;
    Unit u{l.lun, logical_unit_of(map, *v, l.read_only)};
    if (paths) {
      u.lu.port_group = port_group_of(paths->self);
      if (const std::vector<NodePath>* nodes = paths->find(v->id))
        for (const NodePath& p : *nodes)
          u.lu.port_groups.push_back({port_group_of(p.node), access_state_of(p.state),
                                      p.preferred});
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::string default_target_name(const VirtMap& map) {
  return "iqn.2026-12.org.sve:" + identity_digits(map, 12);
}

}  // namespace sve::iscsi

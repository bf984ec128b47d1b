#include "model/virt_map.hpp"

#include <algorithm>
#include <cassert>
#include <type_traits>

#include "hw/device/mdisk_label.hpp"
#include "model/fc_bitmap_geometry.hpp"
#include "model/model.hpp"

namespace sve {

const VolumeLayout* VirtMap::find(uint32_t id) const {
  auto it = volumes.find(id);
  return it == volumes.end() ? nullptr : &it->second;
}

const VolumeLayout* VirtMap::find(const std::string& name) const {
  for (const auto& [id, v] : volumes)
    if (v.name == name) return &v;
  return nullptr;
}

namespace {

template <class Out>
bool split_into(const VolumeLayout& layout, uint64_t offset, uint64_t length, Out& pieces) {
  assert(offset + length <= layout.addressable_bytes());
  uint64_t done = 0;
  while (done < length) {
    uint64_t pos = offset + done;
    uint64_t index = pos / layout.extent_bytes;
    uint64_t within = pos % layout.extent_bytes;
    uint64_t n = std::min(length - done, layout.extent_bytes - within);
    const PhysicalExtent& ext = layout.extents[index];
    uint64_t phys = ext.mdisk_offset + within;
    if (!pieces.empty()) {
      Piece& last = pieces.back();
      if (last.mdisk_id == ext.mdisk_id && last.mdisk_offset + last.length == phys) {
        last.length += n;
        done += n;
        continue;
      }
    }
    if (pieces.size() == pieces.capacity() && !std::is_same_v<Out, std::vector<Piece>>)
      return false;
    pieces.push_back({ext.mdisk_id, phys, n, done});
    done += n;
  }
  return true;
}

}  // namespace

std::vector<Piece> split_range(const VolumeLayout& layout, uint64_t offset,
                               uint64_t length) {
  std::vector<Piece> pieces;
  split_into(layout, offset, length, pieces);
  return pieces;
}

bool split_range(const VolumeLayout& layout, uint64_t offset, uint64_t length,
                 PieceList& out) {
  out.clear();
  return split_into(layout, offset, length, out);
}

std::shared_ptr<const VirtMap> build_virt_map(const ClusterModel& config) {
  auto map = std::make_shared<VirtMap>();
  map->config_uuid = config.config_uuid;
  map->version = config.version;
  for (const auto& v : config.vdisks) {
    const PoolConfig* pool = config.find_pool(v.pool_id);
    if (!pool || !v.formatted) continue;
    VolumeLayout layout;
    layout.id = v.id;
    layout.name = v.name;
    layout.size_bytes = v.size_bytes;
    layout.extent_bytes = pool->extent_bytes;
    layout.read_only = v.read_only;
    layout.grain_bytes = v.grain_bytes;
    layout.warning_pct = v.warning_pct;
    layout.autoexpand = v.autoexpand;
    layout.contingency_bytes = v.contingency_bytes;
    layout.pool_id = v.pool_id;
    layout.hidden = v.bitmap_of != 0;
    if (const Reservations* r = config.find_reservations(v.id))
      layout.reservations = std::make_shared<const Reservations>(*r);
    for (const auto& e : v.extents) {
      layout.extents.push_back(
          {e.mdisk_id, kMdiskReservedBytes + uint64_t{e.index} * pool->extent_bytes});
      if (std::find(layout.mdisks.begin(), layout.mdisks.end(), e.mdisk_id) ==
          layout.mdisks.end())
        layout.mdisks.push_back(e.mdisk_id);
    }
    map->volumes.emplace(v.id, std::move(layout));
  }
  for (const auto& f : config.fcmaps) {
    const VolumeLayout* source = map->find(f.source);
    if (!source) continue;
    CopyLayout c;
    c.id = f.id;
    c.name = f.name;
    c.source = f.source;
    c.target = f.target;
    c.size_bytes = source->size_bytes;
    c.grain_bytes = f.grain_bytes;
    c.copy_rate = f.copy_rate;
    c.state = f.state;
    c.start_seq = f.start_seq;
    c.started_by = f.started_by;
    c.incremental = f.incremental;
    const VolumeLayout* bitmap = map->find(f.bitmap);
    c.bitmap = bitmap ? f.bitmap : 0;
    c.changes_on_bitmap =
        bitmap && f.incremental &&
        bitmap->size_bytes >= fc_bitmap_vdisk_bytes(fc_grains(c.size_bytes, f.grain_bytes), true);
    c.order = f.order;
    c.home = f.home;
    c.clean_rate = f.clean_rate;
    c.history_lost = f.history_lost;
    map->copies.emplace(f.id, std::move(c));
  }
  for (const auto& h : config.hosts) {
    HostAccess a;
    a.id = h.id;
    a.name = h.name;
    a.nbd_identity = h.nbd_identity;
    a.addresses = h.addresses;
    a.iqn = h.iqn;
    a.chap_secret = h.chap_secret;
    for (const auto& m : config.hostmaps)
      if (m.host == h.id) a.luns.push_back({m.vdisk, m.lun, m.read_only});
    map->hosts.push_back(std::move(a));
  }
  return map;
}

}  // namespace sve

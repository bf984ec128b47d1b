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

#include <boost/container/static_vector.hpp>

#include "model/fc_state.hpp"

namespace sve {
struct Reservations;  // model/reservations.hpp
}

namespace sve {

struct ClusterModel;

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
  bool read_only = false;        // hosts may not change it (VdiskConfig::read_only)
  // Thin (VdiskConfig::grain_bytes): the facility above virtualization maps
  // its virtual offsets onto its real capacity, the extents.
  uint32_t grain_bytes = 0;
  uint32_t warning_pct = 0;
  bool autoexpand = false;
  uint64_t contingency_bytes = 0;
  uint32_t pool_id = 0;
  bool hidden = false;  // a mapping's bitmap (VdiskConfig::bitmap_of): not a host's
  // Its SCSI reservations (ClusterModel::reservations); none if nobody
  // registered or reserved.
  std::shared_ptr<const Reservations> reservations;
  bool thin() const { return grain_bytes != 0; }
  // What the virtualizer addresses: the virtual size of a fully allocated
  // vdisk, the real capacity of a thin one.
  uint64_t addressable_bytes() const {
    return thin() ? extent_bytes * extents.size() : size_bytes;
  }
};

// A point-in-time copy mapping as the data path sees it (FcMapConfig).
struct CopyLayout {
  uint32_t id = 0;
  std::string name;
  uint32_t source = 0, target = 0;  // vdisk ids
  uint64_t size_bytes = 0;          // of both
  uint32_t grain_bytes = 0;
  uint32_t copy_rate = 0;
  FcState state = FcState::idle_or_copied;
  uint64_t start_seq = 0;
  uint32_t started_by = 0;
  bool incremental = false;
  uint32_t bitmap = 0;  // the hidden vdisk of its copied-grain bitmap (0: kept in memory only)
  uint64_t order = 0;    // a later mapping reads through an earlier one (FcMapConfig)
  uint32_t home = 0;     // the vdisk whose core executes it (0: its source)
  uint32_t clean_rate = 0;
  bool history_lost = false;  // incremental: the next start copies every grain
  // Incremental: its bitmap vdisk has the plane of grains written during a
  // start (model/fc_bitmap_geometry.hpp; not in mappings made before it).
  bool changes_on_bitmap = false;
  // Whether it became copying before `other` (it does not read through it).
  bool before(const CopyLayout& other) const {
    return order < other.order || (order == other.order && id < other.id);
  }
  uint32_t home_vdisk() const { return home ? home : source; }
};

// A host as the host ports see it (HostConfig and its HostMapConfigs):
// how it is known, and the vdisks it may reach (model/host_access.hpp).
struct HostAccess {
  uint32_t id = 0;
  std::string name;
  std::string nbd_identity;
  std::vector<std::string> addresses;
  std::string iqn;
  std::string chap_secret;  // iSCSI CHAP: required of this host's initiator when set
  struct Lun {
    uint32_t vdisk = 0;
    uint32_t lun = 0;
    bool read_only = false;
  };
  std::vector<Lun> luns;
};

struct VirtMap {
  // The configuration's identity, the same on every node of a cluster:
  // what a host sees of a vdisk's identity (its SCSI serial and NAA
  // identifier) and the iSCSI target's default name are made from it.
  std::string config_uuid;
  uint64_t version = 0;  // of the configuration it was built from
  std::unordered_map<uint32_t, VolumeLayout> volumes;
  std::unordered_map<uint32_t, CopyLayout> copies;  // by mapping id
  std::vector<HostAccess> hosts;
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

// The same into fixed storage, for the I/O path (no heap). A host request is
// at most 32 MiB and extents at least 1 MiB, so 64 pieces always suffice;
// returns false if they do not.
inline constexpr size_t kMaxPieces = 64;
using PieceList = boost::container::static_vector<Piece, kMaxPieces>;
bool split_range(const VolumeLayout& layout, uint64_t offset, uint64_t length,
                 PieceList& out);

std::shared_ptr<const VirtMap> build_virt_map(const ClusterModel& config);

}  // namespace sve

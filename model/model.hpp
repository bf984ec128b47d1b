#pragma once
// The cluster's model: managed disks (mdisks), storage pools cut into
// extents, virtual disks (vdisks) mapped onto those extents, and I/O groups.
// Plain data at the bottom of the layers (model/ needs only util/), the same
// on every node as cluster state, serialised with msgpack maps so that later
// versions can add fields without breaking old metadata.
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "model/fc_state.hpp"
#include "model/reservations.hpp"

namespace sve {

enum class ExtentPolicy : uint8_t { striped = 0, sequential = 1 };

const char* to_string(ExtentPolicy policy);
bool parse_policy(const std::string& text, ExtentPolicy& out);

// One extent of a vdisk: which mdisk and which extent slot on it.
struct ExtentLoc {
  uint32_t mdisk_id = 0;
  uint32_t index = 0;
  bool operator==(const ExtentLoc&) const = default;
  MSGPACK_DEFINE(mdisk_id, index);
};

struct MdiskConfig {
  uint32_t id = 0;
  std::string name;
  std::string path;
  std::string uuid;         // matches the label on the device
  uint64_t data_bytes = 0;  // usable bytes after the reserved label area
  MSGPACK_DEFINE_MAP(id, name, path, uuid, data_bytes);
};

struct PoolConfig {
  uint32_t id = 0;
  std::string name;
  uint64_t extent_bytes = 0;
  std::vector<uint32_t> mdisks;  // mdisk ids, in the order given at creation
  uint32_t stripe_cursor = 0;    // where the next striped allocation starts
  MSGPACK_DEFINE_MAP(id, name, extent_bytes, mdisks, stripe_cursor);
};

struct VdiskConfig {
  uint32_t id = 0;
  std::string name;
  uint32_t pool_id = 0;
  uint64_t size_bytes = 0;
  ExtentPolicy policy = ExtentPolicy::striped;
  std::vector<ExtentLoc> extents;  // extent i of the vdisk
  // False while its new extents are being zeroed (in a cluster, after the
  // extents were committed to it): not exported until then.
  bool formatted = true;
  uint32_t iogrp_id = 0;        // 0: in no I/O group
  uint32_t preferred_node = 0;  // of its I/O group
  // Set by a move that changed its owner: the node that owned it then, and
  // may still hold its dirty blocks. The new owner waits until that node
  // has destaged them and committed the handover (clearing it).
  uint32_t handover_from = 0;
  // A move to another I/O group: the group it left (0 within a group), and
  // the other node of that group if it held a copy of every dirty block then
  // (the group was writing back on both nodes; else 0). That node hands the
  // vdisk over in the old owner's stead while the old owner is out.
  uint32_t handover_group = 0;
  uint32_t handover_partner = 0;
  // Hosts may read it only: writes, trims and zeroing are refused (EROFS),
  // and NBD exports it read-only. What the cache holds is still destaged.
  bool read_only = false;
  // Thin provisioning (docs/thin.md): 0 for a fully allocated vdisk. A thin
  // vdisk's extents are its real capacity, of which the first hold its map;
  // `size_bytes` is its virtual size. Grains are allocated as hosts write.
  uint32_t grain_bytes = 0;
  uint32_t warning_pct = 80;  // of the virtual size used: warn once (0: never)
  bool autoexpand = true;     // take more extents from the pool as needed
  // What autoexpand keeps free ahead of the writes (SVC's contingency): the
  // real capacity it was created with, less its map.
  uint64_t contingency_bytes = 0;
  // Not a host's: the copied-grain bitmap of point-in-time copy mapping
  // `bitmap_of` (model/fc_bitmap_geometry.hpp), made and deleted with it,
  // never exported or listed.
  uint32_t bitmap_of = 0;
  MSGPACK_DEFINE_MAP(id, name, pool_id, size_bytes, policy, extents, formatted, iogrp_id,
                     preferred_node, handover_from, handover_group, handover_partner,
                     read_only, grain_bytes, warning_pct, autoexpand, contingency_bytes,
                     bitmap_of);

  bool thin() const { return grain_bytes != 0; }
};

// Two nodes that serve a set of vdisks together (the cache, later, is
// mirrored between them). A node belongs to one I/O group at most.
struct IoGroupConfig {
  uint32_t id = 0;
  std::string name;
  std::vector<uint32_t> nodes;  // cluster node ids, two of them
  // The group's cache state, changed only by committed events (see
  // model/ownership.hpp): each change starts a new epoch. `solo` 0: both
  // nodes cache, writes mirrored (write-back), in epoch `cache_epoch`.
  // Otherwise the node that runs the group alone, writing through, since
  // the write-back epoch `wb_epoch` ended; only its non-volatile copies of
  // that epoch still count.
  uint64_t cache_epoch = 1;
  uint32_t solo = 0;
  uint64_t wb_epoch = 1;
  MSGPACK_DEFINE_MAP(id, name, nodes, cache_epoch, solo, wb_epoch);
};

// A point-in-time copy mapping (SVC's FlashCopy mapping, docs/flashcopy.md):
// once started, `target` reads as `source` was at that instant. Its state
// and settings are cluster state; which grains are copied is not (it
// changes on the I/O path and is kept by the node that executes the
// source).

struct FcMapConfig {
  uint32_t id = 0;
  std::string name;
  uint32_t source = 0;  // vdisk ids
  uint32_t target = 0;
  uint32_t copy_rate = 50;   // 0: no background copy (a snapshot); 1..150, SVC's scale
  uint32_t grain_bytes = 256 * 1024;
  bool autodelete = false;   // deleted once copied
  FcState state = FcState::idle_or_copied;
  uint64_t start_seq = 0;    // starts so far: the node that keeps the copied
                             // grains knows them for this start only
  uint32_t started_by = 0;   // the node that executed the source when it started
  std::string why;           // why it is stopped or suspended
  uint32_t group = 0;        // its consistency group (0: none)
  bool incremental = false;  // a restart copies only the grains changed since the last
  bool drained = false;      // starting in a group: its writes are paused and drained
  uint32_t bitmap = 0;       // the hidden vdisk that keeps its copied grains (0: none)
  // Cascades and restores (docs/flashcopy.md): the order in which mappings
  // became copying (a later one reads through an earlier one, not the
  // reverse), and the vdisk whose core executes every mapping that shares
  // a vdisk with it while they are not idle (set at prepare).
  uint64_t order = 0;
  uint32_t home = 0;
  uint32_t clean_rate = 50;  // stopping: how fast the grains others need are copied
  // Incremental: what its last start copied and nothing changed since is
  // not known any more (another mapping wrote its source, or executed one
  // of its vdisks on another core); the next start copies every grain.
  bool history_lost = false;
  MSGPACK_DEFINE_MAP(id, name, source, target, copy_rate, grain_bytes, autodelete, state,
                     start_seq, started_by, why, group, incremental, drained, bitmap, order,
                     home, clean_rate, history_lost);
  // The states in which the target is the point in time, not its own data.
  bool active() const {
    return state == FcState::copying || state == FcState::stopping ||
           state == FcState::stopped || state == FcState::suspended;
  }
  // Its source's core holds which grains are copied: copying or stopping.
  bool executing() const { return state == FcState::copying || state == FcState::stopping; }
  // Any state but idle: its vdisks may not be deleted, moved or resized.
  bool busy() const { return state != FcState::idle_or_copied; }
};

// A consistency group of mappings (SVC's FlashCopy consistency group): they
// are prepared, started and stopped together, and start at one instant
// across all their sources. Its state is its mappings' (fcgroup_state).
struct FcGroupConfig {
  uint32_t id = 0;
  std::string name;
  MSGPACK_DEFINE_MAP(id, name);
};

// A host (SVC's mkhost): how it is known on the host ports, and so which
// vdisks it may reach (docs/security.md).
struct HostConfig {
  uint32_t id = 0;
  std::string name;
  std::string nbd_identity;            // its NBD TLS identity (PSK identity, certificate name)
  std::vector<std::string> addresses;  // plain-text NBD: the addresses it connects from (IP or
                                       // IP/prefix), as nbd-server's authfile
  std::string iqn;                     // its iSCSI initiator name
  std::string chap_secret;             // iSCSI CHAP; never listed
  MSGPACK_DEFINE_MAP(id, name, nbd_identity, addresses, iqn, chap_secret);
};

// A vdisk mapped to a host (SVC's mkvdiskhostmap): the host sees it, as
// LUN `lun`, and only reads it if `read_only`.
struct HostMapConfig {
  uint32_t host = 0;
  uint32_t vdisk = 0;
  uint32_t lun = 0;
  bool read_only = false;
  MSGPACK_DEFINE_MAP(host, vdisk, lun, read_only);
};

// An administrator (SVC's user): its role (admin/admin_roles.hpp) and its
// password, kept only as a salted slow hash (admin/admin_auth.hpp).
struct UserConfig {
  uint32_t id = 0;
  std::string name;
  std::string role;
  std::string password_hash;
  MSGPACK_DEFINE_MAP(id, name, role, password_hash);
};

// A vdisk's SCSI reservations (persistent, and RESERVE/RELEASE): cluster
// state, so that every node's ports enforce the same ones and they outlive
// a node (docs/iscsi.md). Only vdisks someone registered with or reserved
// have one.
struct VdiskReservations {
  uint32_t vdisk = 0;
  Reservations state;
  MSGPACK_DEFINE_MAP(vdisk, state);
};

struct ClusterModel {
  uint64_t version = 0;     // bumped by every committed change
  std::string config_uuid;  // written into every mdisk label
  uint32_t next_id = 1;     // ids are never reused
  std::vector<MdiskConfig> mdisks;
  std::vector<PoolConfig> pools;
  std::vector<VdiskConfig> vdisks;
  std::vector<IoGroupConfig> iogrps;
  std::vector<FcMapConfig> fcmaps;
  std::vector<FcGroupConfig> fcgroups;
  std::vector<HostConfig> hosts;
  std::vector<HostMapConfig> hostmaps;
  std::vector<UserConfig> users;  // none: only loopback clients may send commands
  std::string token_key;          // hex; signs session tokens (made with the first user)
  std::vector<VdiskReservations> reservations;
  MSGPACK_DEFINE_MAP(version, config_uuid, next_id, mdisks, pools, vdisks, iogrps, fcmaps,
                     fcgroups, hosts, hostmaps, users, token_key, reservations);

  MdiskConfig* find_mdisk(const std::string& name);
  MdiskConfig* find_mdisk(uint32_t id);
  PoolConfig* find_pool(const std::string& name);
  PoolConfig* find_pool(uint32_t id);
  VdiskConfig* find_vdisk(const std::string& name);
  IoGroupConfig* find_iogrp(const std::string& name);
  const IoGroupConfig* find_iogrp(uint32_t id) const;
  const MdiskConfig* find_mdisk(uint32_t id) const;
  const PoolConfig* find_pool(uint32_t id) const;
  FcMapConfig* find_fcmap(const std::string& name);
  FcGroupConfig* find_fcgroup(const std::string& name);
  HostConfig* find_host(const std::string& name);
  const UserConfig* find_user(const std::string& name) const;
  const HostConfig* find_host(uint32_t id) const;
  const VdiskConfig* find_vdisk(uint32_t id) const;
  const Reservations* find_reservations(uint32_t vdisk) const;
};

// Extent slots an mdisk offers in a pool with this extent size.
inline uint32_t extent_slots(const MdiskConfig& mdisk, uint64_t extent_bytes) {
  return static_cast<uint32_t>(mdisk.data_bytes / extent_bytes);
}

}  // namespace sve

MSGPACK_ADD_ENUM(sve::ExtentPolicy);
MSGPACK_ADD_ENUM(sve::FcState);

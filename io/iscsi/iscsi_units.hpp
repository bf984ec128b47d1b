#pragma once
// What an iSCSI session's LUNs are: each LUN of its host's mappings (or,
// with no hosts, of every vdisk to a loopback initiator: iscsi_access.hpp)
// as SCSI sees the vdisk behind it. A vdisk's identity (its unit serial
// and NAA identifier) is made from the configuration's identity and the
// vdisk's id, so every node of a cluster reports the same: that is how a
// multipath host knows two paths lead to one disk.
#include <cstdint>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_access.hpp"
#include "io/scsi/scsi_commands.hpp"
#include "model/host_paths.hpp"
#include "model/virt_map.hpp"

namespace sve::iscsi {

struct Unit {
  uint16_t lun = 0;
  scsi::LogicalUnit lu;
};

scsi::LogicalUnit logical_unit_of(const VirtMap& map, const VolumeLayout& vdisk, bool read_only);

// The units of these LUNs (a LUN whose vdisk is gone is left out), by LUN,
// with their ALUA state from `paths` (none: a standalone node's, this port's
// group alone and optimized). Each node is target port group `node id` (a
// standalone node 1), of one port with the same relative id.
std::vector<Unit> units_of(const VirtMap& map, const std::vector<LunEntry>& luns,
                           const HostPaths* paths = nullptr);

// This node's target port group (and portal group tag).
uint16_t port_group_of(uint32_t node);

// iqn.2026-12.org.sve:<the first twelve hex digits of the configuration's
// identity>: one target per cluster, the same name on every node.
std::string default_target_name(const VirtMap& map);

}  // namespace sve::iscsi

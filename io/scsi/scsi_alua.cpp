// Asymmetric logical unit access (SPC-4 5.16), implicit only (TPGS 01b):
// the cluster decides which node's port group is active/optimized for a
// vdisk (its owner), and hosts learn it by REPORT TARGET PORT GROUPS, by
// the unit attention a change establishes (the transport's part), and by
// the NOT READY that a port which cannot serve the unit answers.
#include "io/scsi/scsi_internal.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;

// States a group of this target can be in: active/optimized,
// active/non-optimized, unavailable, transitioning (T_SUP, U_SUP, AN_SUP,
// AO_SUP). Standby is never used.
constexpr uint8_t kSupportedStates = 0x80 | 0x08 | 0x02 | 0x01;
// How long a transition may take (the extended header), in seconds: the
// partner takes a vdisk over once the owner's lease has run out and it has
// committed that it runs the group alone.
constexpr uint8_t kTransitionSeconds = 30;

std::vector<PortGroup> groups_of(const LogicalUnit& lu) {
  if (!lu.port_groups.empty()) return lu.port_groups;
  return {PortGroup{lu.port_group, AccessState::optimized, true}};
}

}  // namespace

AccessState LogicalUnit::access() const {
  if (port_groups.empty()) return AccessState::optimized;
  for (const PortGroup& g : port_groups)
    if (g.id == port_group) return g.state;
  return AccessState::unavailable;  // (this port is not among them)
}

std::vector<uint8_t> target_port_groups(const LogicalUnit& lu, bool extended,
                                        uint32_t allocation) {
  const size_t header = extended ? 8 : 4;
  std::vector<uint8_t> d(header, 0);
  if (extended) {
    d[4] = 0x10;  // format type 001b
    d[5] = kTransitionSeconds;
  }
  for (const PortGroup& g : groups_of(lu)) {
    const size_t at = d.size();
    d.resize(at + 12, 0);
    d[at] = static_cast<uint8_t>((g.preferred ? 0x80 : 0x00) | static_cast<uint8_t>(g.state));
    d[at + 1] = kSupportedStates;
    put16(d, at + 2, g.id);
    d[at + 7] = 1;               // one target port: the node's portal
    put16(d, at + 10, g.id);     // its relative target port identifier
  }
  put32(d, 0, static_cast<uint32_t>(d.size() - 4));
  if (d.size() > allocation) d.resize(allocation);
  return d;
}

Plan plan_report_target_port_groups(const uint8_t* cdb, const LogicalUnit& lu) {
  const uint8_t format = cdb[1] >> 5;
  if (format > 1) return check(sense::invalid_field_in_cdb);
  return answer(target_port_groups(lu, format == 1, be32(cdb + 6)), be32(cdb + 6));
}

std::optional<Sense> refused_by_access_state(const uint8_t* cdb, const LogicalUnit& lu) {
  const AccessState state = lu.access();
  if (state == AccessState::optimized || state == AccessState::non_optimized) return std::nullopt;
  // What every state allows: finding out what the unit is and where it can
  // be reached (SPC-4 5.16.2.4).
  switch (cdb[0]) {
    case kInquiry:
    case kRequestSense:
    case kReportLuns:
    case kMaintenanceIn: return std::nullopt;
    default: break;
  }
  switch (state) {
    case AccessState::transitioning: return sense::port_transitioning;
    case AccessState::standby: return sense::port_standby;
    default: return sense::port_unavailable;
  }
}

// VPD 0x83's designators of the port the command came through: its relative
// target port (iSCSI, binary) and its target port group.
std::vector<uint8_t> alua_designators(const LogicalUnit& lu) {
  const auto hi = static_cast<uint8_t>(lu.port_group >> 8);
  const auto lo = static_cast<uint8_t>(lu.port_group);
  return {0x51, 0x94, 0x00, 0x04, 0x00, 0x00, hi, lo,   // PIV, target port, relative port
          0x01, 0x15, 0x00, 0x04, 0x00, 0x00, hi, lo};  // target port, target port group
}

}  // namespace sve::scsi

#pragma once
// What the SCSI planners share (inside io/scsi only): big-endian fields
// read from a CDB or a parameter list and written into an answer, the two
// shapes of a plan answered here, and each file's planners.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "io/scsi/scsi_commands.hpp"

namespace sve::scsi::bytes {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
inline uint64_t be64(const uint8_t* p) { return uint64_t{be32(p)} << 32 | be32(p + 4); }

inline void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
  v[at] = static_cast<uint8_t>(x >> 8);
  v[at + 1] = static_cast<uint8_t>(x);
}
inline void put32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  put16(v, at, static_cast<uint16_t>(x >> 16));
  put16(v, at + 2, static_cast<uint16_t>(x));
}
inline void put64(std::vector<uint8_t>& v, size_t at, uint64_t x) {
  put32(v, at, static_cast<uint32_t>(x >> 32));
  put32(v, at + 4, static_cast<uint32_t>(x));
}

// A CHECK CONDITION with this sense.
inline Plan check(const Sense& s) {
  Plan p;
  p.status = Status::check_condition;
  p.sense = s;
  return p;
}

// GOOD with this Data-In, cut to the allocation length.
inline Plan answer(std::vector<uint8_t> data, uint32_t allocation) {
  Plan p;
  if (data.size() > allocation) data.resize(allocation);
  p.data_in = std::move(data);
  return p;
}

// Whether [lba, lba + blocks) lies within the unit.
inline bool in_range(uint64_t lba, uint64_t blocks, const LogicalUnit& lu) {
  return lba <= lu.blocks && blocks <= lu.blocks - lba;
}

}  // namespace sve::scsi::bytes

namespace sve::scsi {

// Service actions.
inline constexpr uint8_t kReadCapacity16 = 0x10;    // of SERVICE ACTION IN(16)
inline constexpr uint8_t kGetLbaStatus = 0x12;      // of SERVICE ACTION IN(16)
inline constexpr uint8_t kReportOpcodes = 0x0c;     // of MAINTENANCE IN
inline constexpr uint8_t kReportTargetPortGroups = 0x0a;  // of MAINTENANCE IN

// The CONTROL byte (a CDB's last) asks for ACA after a CHECK CONDITION.
inline constexpr uint8_t kControlNaca = 0x04;

// scsi_mode.cpp
Plan plan_mode_sense(const uint8_t* cdb, bool ten, const LogicalUnit& lu);
Plan plan_mode_select(const uint8_t* cdb, bool ten, const LogicalUnit& lu);
// scsi_provisioning.cpp
Plan plan_write_same(const uint8_t* cdb, bool sixteen, const LogicalUnit& lu);
Plan plan_unmap(const uint8_t* cdb, const LogicalUnit& lu);
Plan plan_get_lba_status(const uint8_t* cdb, const LogicalUnit& lu);
// scsi_alua.cpp
Plan plan_report_target_port_groups(const uint8_t* cdb, const LogicalUnit& lu);
// The CHECK CONDITION a command meets because this port's group cannot
// serve the unit now, or none (it runs).
std::optional<Sense> refused_by_access_state(const uint8_t* cdb, const LogicalUnit& lu);
std::vector<uint8_t> alua_designators(const LogicalUnit& lu);
// scsi_opcodes.cpp
Plan plan_report_opcodes(const uint8_t* cdb);

}  // namespace sve::scsi

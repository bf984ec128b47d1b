#pragma once
// SCSI reservations of one vdisk as cluster state: persistent reservations
// (SPC-4 5.13) and the older RESERVE/RELEASE (SPC-2). Plain data and pure
// rules, so that the state lives in the model: the node that receives a
// host's PERSISTENT RESERVE OUT changes nothing itself, it has the cluster
// apply the request (apply() below, on the committed model), and every node
// then checks every command against the same state, whatever path it came
// by. What the commands look like on the wire (and the sense data) is
// io/scsi/scsi_reservations.hpp's.
//
// Keys belong to I_T nexuses, as the standard says: an initiator port (for
// iSCSI its name and the session's ISID: another ISID is another nexus)
// through a target port (each node's one port). A registration made with
// ALL_TG_PT holds through every target port.
#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace sve {

// Registrations one unit keeps, at most (READ KEYS' list must fit in the
// 64 KiB a host may ask for; more are refused as the standard says, with
// INSUFFICIENT REGISTRATION RESOURCES).
inline constexpr size_t kMaxRegistrations = 512;
// The longest initiator port name taken (iSCSI: 223 bytes of name, ",i,0x"
// and twelve hex digits).
inline constexpr size_t kMaxInitiatorPortBytes = 256;

// An I_T nexus: the initiator port and the target port's relative id.
struct Nexus {
  std::string initiator;
  uint16_t port = 0;
  bool operator==(const Nexus&) const = default;
  MSGPACK_DEFINE_MAP(initiator, port);
};

// An initiator port is "name,i,0xISID"; a whole initiator device (SPEC_I_PT's
// TransportID format 00b) is the name alone, and covers each of its ports.
inline bool initiator_device(const std::string& initiator) {
  return initiator.find(",i,0x") == std::string::npos;
}
inline bool covers(const std::string& registered, const std::string& initiator_port) {
  if (registered == initiator_port) return true;
  const size_t n = registered.size();
  return initiator_device(registered) && initiator_port.size() > n &&
         initiator_port.compare(0, n, registered) == 0 &&
         initiator_port.compare(n, 5, ",i,0x") == 0;
}

struct Registration {
  std::string initiator;    // an initiator port, or a device (covers)
  uint16_t port = 0;        // the target port it was made through
  bool all_ports = false;   // ALL_TG_PT: it holds through every target port
  uint64_t key = 0;
  bool holds(const Nexus& n) const {
    return (all_ports || port == n.port) && covers(initiator, n.initiator);
  }
  bool operator==(const Registration&) const = default;
  MSGPACK_DEFINE_MAP(initiator, port, all_ports, key);
};

// Persistent reservation types (SPC-4 Table 170).
enum : uint8_t {
  kWriteExclusive = 1,
  kExclusiveAccess = 3,
  kWriteExclusiveRegistrantsOnly = 5,
  kExclusiveAccessRegistrantsOnly = 6,
  kWriteExclusiveAllRegistrants = 7,
  kExclusiveAccessAllRegistrants = 8,
};
bool all_registrants(uint8_t type);
// Types under which every registrant may do what the holder may.
bool registrants_served(uint8_t type);
bool exclusive_access(uint8_t type);  // others may not even read

// The unit attentions a change tells other nexuses (ASC << 8 | ASCQ, sense
// key UNIT ATTENTION).
inline constexpr uint16_t kReservationsPreempted = 0x2a03;
inline constexpr uint16_t kReservationsReleased = 0x2a04;
inline constexpr uint16_t kRegistrationsPreempted = 0x2a05;

struct Reservations {
  uint32_t generation = 0;  // PRgeneration: counts registration changes
  std::vector<Registration> registrations;
  // The persistent reservation (type 0: none) and the registration that
  // holds it (index into `registrations`; all-registrants types: every
  // registration holds it).
  uint8_t type = 0;
  uint32_t holder = 0;
  bool aptpl = false;  // the last registration asked to persist through power loss
  // RESERVE(6/10): held by this nexus, if `reserved`.
  bool reserved = false;
  Nexus reserved_by;
  // What the last change must tell other nexuses, once each (a unit
  // attention `told_code`): the registrations it preempted or whose
  // reservation it released. `attention` counts changes that told anyone.
  uint64_t attention = 0;
  std::vector<Registration> told;
  uint16_t told_code = 0;
  // The last change was a PREEMPT AND ABORT: every node aborts the tasks
  // of the nexuses in `told` for the unit before it counts as enforcing it
  // (so the preemption is answered only once none of them can still
  // change the medium).
  bool told_abort = false;
  MSGPACK_DEFINE_MAP(generation, registrations, type, holder, aptpl, reserved, reserved_by,
                     attention, told, told_code, told_abort);

  const Registration* registration_of(const Nexus& n) const;
  bool holds_reservation(const Nexus& n) const;
  bool operator==(const Reservations&) const = default;
};

// A PERSISTENT RESERVE OUT, RESERVE or RELEASE as the cluster applies it.
struct ReservationRequest {
  enum class Kind : uint8_t {
    register_key = 0,  // PERSISTENT RESERVE OUT's service actions
    reserve = 1,
    release = 2,
    clear = 3,
    preempt = 4,
    preempt_and_abort = 5,
    register_and_ignore = 6,
    register_and_move = 7,
    reserve_spc2 = 100,   // RESERVE(6/10)
    release_spc2 = 101,   // RELEASE(6/10)
    nexus_lost = 102,     // logout, connection gone: an SPC-2 reservation ends
    reset = 103,          // LUN or target reset: SPC-2 reservations end
    // The administrator's (svectl vdisk clear-reservations): every
    // registration, the persistent reservation and an SPC-2 reservation
    // end, whoever holds them; their holders hear RESERVATIONS PREEMPTED.
    administrator_clear = 104,
  };
  Kind kind = Kind::register_key;
  uint8_t scope = 0;
  uint8_t type = 0;
  uint64_t key = 0;
  uint64_t action_key = 0;
  bool all_ports = false;
  bool aptpl = false;
  // REGISTER AND MOVE: the nexus the reservation moves to (registered with
  // `action_key`), and whether the sender's registration ends.
  Nexus move_to;
  bool unregister = false;
  // REGISTER with SPEC_I_PT: the other initiator ports (TransportIDs)
  // registered with the same key, through the same target port (or all).
  std::vector<std::string> specified;
};

// What applying one request said: the command's end (SCSI makes a status
// and sense of it), and whether the state changed (then the cluster
// commits it).
enum class ReservationResult : uint8_t {
  good,
  conflict,                  // RESERVATION CONFLICT
  invalid_field_in_cdb,
  invalid_field_in_parameter_list,
  invalid_release,           // INVALID RELEASE OF PERSISTENT RESERVATION
  no_resources,              // INSUFFICIENT REGISTRATION RESOURCES
  no_unit,                   // the vdisk is gone
  busy,                      // (the node's) not committed: try again
};
struct ReservationOutcome {
  ReservationResult result = ReservationResult::good;
  bool changed = false;
};

// Applies `request` from nexus `who` to `state` (SPC-4 5.13.5 to 5.13.11,
// SPC-2's RESERVE and RELEASE, SPC-3 5.6.3's exceptions). On anything but
// good the state is left as it was.
ReservationOutcome apply_request(Reservations& state, const Nexus& who, const ReservationRequest& request);

// The unit attention (ASC << 8 | ASCQ) the last change told `who`, if any
// (the nexus that made the change is never told).
bool told(const Reservations& state, const Nexus& who, uint16_t& code);

// A type's name for the administrator ("write_exclusive"...; "none").
const char* reservation_type_name(uint8_t type);

}  // namespace sve


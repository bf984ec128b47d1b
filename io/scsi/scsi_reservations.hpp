#pragma once
// SCSI reservations on the wire: PERSISTENT RESERVE IN and OUT (SPC-4
// 5.13), RESERVE and RELEASE (SPC-2). The state and its rules are cluster
// state (model/reservations.hpp): the node that receives a PERSISTENT
// RESERVE OUT has the cluster apply it, and every node checks every
// command against the same state (conflicts()).
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/scsi/scsi_commands.hpp"
#include "model/reservations.hpp"

namespace sve::scsi {

inline constexpr uint8_t kPersistentReserveIn = 0x5e;
inline constexpr uint8_t kPersistentReserveOut = 0x5f;
inline constexpr uint8_t kReserve6 = 0x16;
inline constexpr uint8_t kRelease6 = 0x17;
inline constexpr uint8_t kReserve10 = 0x56;
inline constexpr uint8_t kRelease10 = 0x57;
// REGISTER AND MOVE's parameter list: 24 bytes and a TransportID (an
// iSCSI name and ISID take at most 4 + 224 + 20 bytes; this leaves room).
inline constexpr uint32_t kMaxRegisterAndMoveBytes = 24 + 4 + 512;
// REGISTER with SPEC_I_PT: 28 bytes and the TransportIDs of the ports
// registered with the sender, at most this many bytes in all.
inline constexpr uint32_t kMaxSpecifiedBytes = 28 + 16 * 256;

namespace sense {
inline constexpr Sense invalid_release{0x05, 0x26, 0x04};  // invalid release of persistent reservation
inline constexpr Sense no_registration_resources{0x05, 0x55, 0x04};
inline constexpr Sense reservations_preempted{0x06, 0x2a, 0x03};
inline constexpr Sense reservations_released{0x06, 0x2a, 0x04};
inline constexpr Sense registrations_preempted{0x06, 0x2a, 0x05};
}  // namespace sense

// The model's reservation state, as SCSI's.
using sve::Nexus;
using sve::Registration;
using sve::ReservationOutcome;
using sve::ReservationRequest;
using sve::ReservationResult;
using sve::Reservations;

// A reservation command (PERSISTENT RESERVE OUT with its parameter list,
// `bytes` of it; RESERVE or RELEASE(6/10)): the request, or false with the
// CHECK CONDITION's sense.
bool parse_reservation(const uint8_t* cdb, const uint8_t* list, size_t bytes,
                       ReservationRequest& out, Sense& refused);

// An iSCSI initiator port TransportID (SPC-4 7.6.4.6, format 01b: the
// name, ",i,0x" and the ISID's twelve hex digits, NUL terminated), `bytes`
// of it, as the port's name the way a login names it (ISID in lowercase);
// with `device`, also format 00b (the initiator device: its name alone,
// NUL terminated), as the name; false if it is anything else.
bool parse_transport_id(const uint8_t* id, size_t bytes, std::string& port,
                        bool device = false);

// plan()'s part: PERSISTENT RESERVE OUT, RESERVE and RELEASE (checked and
// sent to the cluster, with the parameter list as Data-Out) and PERSISTENT
// RESERVE IN (answered here).
Plan plan_reservation(const uint8_t* cdb, const Reservations* state);

// Whether command `cdb` from `who` meets a RESERVATION CONFLICT (SPC-4
// 5.13.1 Table 163, SBC-3 4.17, SPC-2's RESERVE). Reservation commands
// themselves are judged by the model's apply().
bool conflicts(const uint8_t* cdb, const Reservations& state, const Nexus& who);

// The status (and sense) a reservation command ends with.
void status_of(ReservationResult result, Status& status, Sense& sense);

}  // namespace sve::scsi


// SCSI reservations on the wire (SPC-4 5.13, SPC-2): the commands'
// parsing, the conflict rules, PERSISTENT RESERVE IN's answers. The state
// and its rules are model/reservations.hpp's.
#include "io/scsi/scsi_reservations.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include "io/scsi/scsi_internal.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;
using Kind = ReservationRequest::Kind;

// How a command uses the unit, for the conflict rules: never conflicts
// (asks about the unit, or is a reservation command judged by apply()),
// reads it, or changes it.
enum class Use { free, read, write };

Use use_of(const uint8_t* cdb) {
  switch (cdb[0]) {
    case kInquiry:
    case kReportLuns:
    case kRequestSense:
    case kTestUnitReady:
    case kReadCapacity10:
    case kMaintenanceIn:
    case kPersistentReserveIn:
    case kPersistentReserveOut:
    case kReserve6:
    case kRelease6:
    case kReserve10:
    case kRelease10:
      return Use::free;
    case kServiceActionIn16:
      return (cdb[1] & 0x1f) == kReadCapacity16 ? Use::free : Use::read;
    case kPreventAllow:
      return (cdb[4] & 0x03) == 0 ? Use::free : Use::write;
    case kRead6:
    case kRead10:
    case kRead12:
    case kRead16:
    case kVerify10:
    case kVerify12:
    case kVerify16:
    case kPreFetch10:
    case kPreFetch16:
    case kModeSense6:
    case kModeSense10:
      return Use::read;
    default:
      return Use::write;  // writes, and anything else that may change the unit
  }
}

// What an SPC-2 reservation leaves to other nexuses (SPC-2 5.5.1).
bool free_under_spc2(const uint8_t* cdb) {
  switch (cdb[0]) {
    case kInquiry:
    case kReportLuns:
    case kRequestSense:
    case kRelease6:
    case kRelease10:
    case kMaintenanceIn:
      return true;
    default:
      return false;
  }
}

std::vector<uint8_t> transport_id(const std::string& initiator) {
  // iSCSI, format 01b (SPC-4 7.6.4.6): the name ",i,0x" ISID, NUL
  // terminated, padded to four bytes, at least 20; a device's (00b): the
  // name alone.
  size_t n = std::max<size_t>(20, (initiator.size() + 1 + 3) / 4 * 4);
  std::vector<uint8_t> t(4 + n, 0);
  t[0] = (initiator_device(initiator) ? 0x00 : 0x40) | 0x05;
  put16(t, 2, static_cast<uint16_t>(n));
  std::copy(initiator.begin(), initiator.end(), t.begin() + 4);
  return t;
}

Plan reserve_in(const uint8_t* cdb, const Reservations& s) {
  const uint32_t allocation = be16(cdb + 7);
  std::vector<uint8_t> d(8, 0);
  put32(d, 0, s.generation);
  switch (cdb[1] & 0x1f) {
    case 0:  // READ KEYS
      for (const auto& r : s.registrations) {
        d.resize(d.size() + 8);
        put64(d, d.size() - 8, r.key);
      }
      put32(d, 4, static_cast<uint32_t>(d.size() - 8));
      break;
    case 1:  // READ RESERVATION
      if (s.type != 0) {
        d.resize(24, 0);
        put32(d, 4, 16);
        put64(d, 8, all_registrants(s.type) ? 0 : s.registrations[s.holder].key);
        d[21] = s.type;  // scope 0: the logical unit
      }
      break;
    case 2:  // REPORT CAPABILITIES
      d.assign(8, 0);
      put16(d, 0, 8);
      d[2] = 0x10 | 0x08 | 0x04 | 0x01;  // CRH, SIP_C, ATP_C, PTPL_C
      d[3] = static_cast<uint8_t>(0x80 | (s.aptpl ? 0x01 : 0));  // TMV, PTPL_A
      d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;  // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
      d[5] = 0x01;                              // EX_AC_AR
      break;
    case 3:  // READ FULL STATUS
      for (size_t i = 0; i < s.registrations.size(); ++i) {
        const Registration& r = s.registrations[i];
        auto tid = transport_id(r.initiator);
        const size_t at = d.size();
        d.resize(at + 24, 0);
        put64(d, at, r.key);
        const bool holds = s.type != 0 && (all_registrants(s.type) || s.holder == i);
        d[at + 12] = static_cast<uint8_t>((r.all_ports ? 0x02 : 0) | (holds ? 0x01 : 0));
        if (holds) d[at + 13] = s.type;
        put16(d, at + 18, r.all_ports ? 0 : r.port);
        put32(d, at + 20, static_cast<uint32_t>(tid.size()));
        d.insert(d.end(), tid.begin(), tid.end());
      }
      put32(d, 4, static_cast<uint32_t>(d.size() - 8));
      break;
    default:
      return check(sense::invalid_field_in_cdb);
  }
  return answer(std::move(d), allocation);
}

}  // namespace

// REGISTER AND MOVE's list: its keys, UNREG and APTPL, the relative target
// port and the TransportID of the nexus the reservation moves to.
static bool parse_register_and_move(const uint8_t* cdb, const uint8_t* list, size_t bytes,
                                    ReservationRequest& out, Sense& refused);

// SPEC_I_PT's TransportIDs, one after the other (each as long as its own
// header says): the initiator ports they name.
static bool parse_specified(const uint8_t* ids, size_t bytes, std::vector<std::string>& ports,
                            Sense& refused) {
  size_t at = 0;
  while (at < bytes) {
    std::string port;
    const size_t id_bytes = bytes - at >= 4 ? 4 + size_t{be16(ids + at + 2)} : 0;
    if (id_bytes == 0 || id_bytes > bytes - at ||
        !parse_transport_id(ids + at, id_bytes, port, true)) {
      refused = sense::invalid_field_in_parameter_list;
      return false;
    }
    ports.push_back(std::move(port));
    at += id_bytes;
  }
  return true;
}

bool parse_transport_id(const uint8_t* id, size_t bytes, std::string& port, bool device) {
  if (bytes < 24) return false;  // (before any byte of it is read)
  const unsigned format = id[0] >> 6;
  if ((id[0] & 0x0f) != 0x05 || (format != 1 && !(device && format == 0))) return false;
  const size_t length = be16(id + 2);
  if (length < 20 || length % 4 != 0 || 4 + length > bytes) return false;
  const char* text = reinterpret_cast<const char*>(id + 4);
  const size_t n = strnlen(text, length);
  if (n == length) return false;  // not NUL terminated
  std::string s(text, n);
  if (format == 0) {
    // The device: a name (no ',' in it, so it is never taken for a port).
    if (s.empty() || s.size() > kMaxInitiatorPortBytes - 17) return false;
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == ',') return false;
    port = std::move(s);
    return true;
  }
  const size_t sep = s.size() >= 17 ? s.size() - 17 : std::string::npos;
  if (sep == std::string::npos || sep == 0) return false;
  std::string name = s.substr(0, sep), tail = s.substr(sep);
  for (char& c : tail) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (tail.compare(0, 5, ",i,0x") != 0) return false;
  for (size_t i = 5; i < tail.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(tail[i]))) return false;
  if (name.size() > kMaxInitiatorPortBytes - tail.size()) return false;
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == ',') return false;
  port = name + tail;
  return true;
}

bool parse_reservation(const uint8_t* cdb, const uint8_t* list, size_t bytes,
                       ReservationRequest& out, Sense& refused) {
  out = {};
  switch (cdb[0]) {
    case kReserve6:
    case kReserve10:
      out.kind = Kind::reserve_spc2;
      return true;
    case kRelease6:
    case kRelease10:
      out.kind = Kind::release_spc2;
      return true;
    case kPersistentReserveOut:
      break;
    default:
      refused = sense::invalid_opcode;
      return false;
  }
  const uint8_t action = cdb[1] & 0x1f;
  if (action > 7) {  // REPLACE LOST: not built
    refused = sense::invalid_field_in_cdb;
    return false;
  }
  if (action == 7) return parse_register_and_move(cdb, list, bytes, out, refused);
  const uint32_t length = be32(cdb + 5);
  // 24 bytes, or for a REGISTER with SPEC_I_PT 28 and its TransportIDs.
  const bool specifies = action == 0 && bytes >= 28 && (list[20] & 0x08);
  if (bytes != length ||
      (specifies ? length != 28 + static_cast<uint64_t>(be32(list + 24)) : length != 24)) {
    refused = sense::parameter_list_length_error;
    return false;
  }
  if (specifies && !parse_specified(list + 28, length - 28, out.specified, refused)) return false;
  out.kind = static_cast<Kind>(action);
  out.scope = cdb[2] >> 4;
  out.type = cdb[2] & 0x0f;
  out.key = be64(list);
  out.action_key = be64(list + 8);
  const uint8_t flags = list[20];
  out.all_ports = flags & 0x04;
  out.aptpl = flags & 0x01;
  const bool registers = out.kind == Kind::register_key || out.kind == Kind::register_and_ignore;
  // SPEC_I_PT means something to a REGISTER only (parsed above), ALL_TG_PT
  // to a registration.
  if (((flags & 0x08) && !specifies) || (out.all_ports && !registers)) {
    refused = sense::invalid_field_in_parameter_list;
    return false;
  }
  return true;
}

static bool parse_register_and_move(const uint8_t* cdb, const uint8_t* list, size_t bytes,
                                    ReservationRequest& out, Sense& refused) {
  const uint32_t length = be32(cdb + 5);
  if (length < 24 || length > kMaxRegisterAndMoveBytes || bytes != length) {
    refused = sense::parameter_list_length_error;
    return false;
  }
  out.kind = Kind::register_and_move;  // (SCOPE and TYPE: the reservation keeps its own)
  out.key = be64(list);
  out.action_key = be64(list + 8);
  out.unregister = list[17] & 0x02;
  out.aptpl = list[17] & 0x01;
  out.move_to.port = be16(list + 18);
  const uint32_t id_bytes = be32(list + 20);
  if (id_bytes > length - 24 ||
      !parse_transport_id(list + 24, id_bytes, out.move_to.initiator)) {
    refused = sense::invalid_field_in_parameter_list;
    return false;
  }
  return true;
}

Plan plan_reservation(const uint8_t* cdb, const Reservations* state) {
  static const Reservations kNone;
  Plan p;
  switch (cdb[0]) {
    case kPersistentReserveIn:
      return reserve_in(cdb, state ? *state : kNone);
    case kPersistentReserveOut: {
      if ((cdb[1] & 0x1f) > 7) return check(sense::invalid_field_in_cdb);
      const uint32_t length = be32(cdb + 5);
      // 24 bytes; REGISTER AND MOVE's and a REGISTER's with SPEC_I_PT carry
      // TransportIDs after them (their parsing checks the length exactly).
      const uint8_t action = cdb[1] & 0x1f;
      const uint32_t most = action == 7   ? kMaxRegisterAndMoveBytes
                            : action == 0 ? kMaxSpecifiedBytes
                                          : 24;
      if (length < 24 || length > most) return check(sense::parameter_list_length_error);
      p.data_out = length;
      break;
    }
    case kReserve6:
    case kRelease6:
      if (cdb[1] & 0x01) return check(sense::invalid_field_in_cdb);  // extents (obsolete)
      break;
    case kReserve10:
    case kRelease10:
      if (cdb[1] & 0x13) return check(sense::invalid_field_in_cdb);  // third party, extents
      break;
    default:
      return check(sense::invalid_opcode);
  }
  p.flow = Flow::reservation;
  return p;
}

bool conflicts(const uint8_t* cdb, const Reservations& s, const Nexus& who) {
  if (s.reserved) {
    if (cdb[0] == kPersistentReserveIn || cdb[0] == kPersistentReserveOut) return true;
    if (!(s.reserved_by == who)) return !free_under_spc2(cdb);
  }
  if (s.type == 0 || s.holds_reservation(who)) return false;
  // Registrants-only and all-registrants types serve every registrant.
  if (registrants_served(s.type) && s.registration_of(who)) return false;
  switch (use_of(cdb)) {
    case Use::free: return false;
    case Use::read: return exclusive_access(s.type);
    case Use::write: return true;
  }
  return true;
}

void status_of(ReservationResult result, Status& status, Sense& sense) {
  status = Status::check_condition;
  switch (result) {
    case ReservationResult::good: status = Status::good; sense = {}; return;
    case ReservationResult::conflict: status = Status::reservation_conflict; sense = {}; return;
    case ReservationResult::busy: status = Status::busy; sense = {}; return;
    case ReservationResult::invalid_field_in_cdb: sense = sense::invalid_field_in_cdb; return;
    case ReservationResult::invalid_field_in_parameter_list:
      sense = sense::invalid_field_in_parameter_list;
      return;
    case ReservationResult::invalid_release: sense = sense::invalid_release; return;
    case ReservationResult::no_resources: sense = sense::no_registration_resources; return;
    case ReservationResult::no_unit: sense = sense::lun_not_supported; return;
  }
  sense = sense::invalid_field_in_cdb;
}

}  // namespace sve::scsi

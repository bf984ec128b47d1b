// SCSI reservations as cluster state: the rules (model/reservations.hpp).
#include "model/reservations.hpp"

#include <algorithm>

namespace sve {
namespace {

using Kind = ReservationRequest::Kind;

bool valid_type(uint8_t t) {
  return t == kWriteExclusive || t == kExclusiveAccess || t == kWriteExclusiveRegistrantsOnly ||
         t == kExclusiveAccessRegistrantsOnly || t == kWriteExclusiveAllRegistrants ||
         t == kExclusiveAccessAllRegistrants;
}
using R = ReservationResult;
ReservationOutcome good() { return {}; }
ReservationOutcome conflict() { return {R::conflict, false}; }
ReservationOutcome refuse(R why) { return {why, false}; }

Registration* registration_of(Reservations& s, const Nexus& n) {
  for (auto& r : s.registrations)
    if (r.holds(n)) return &r;
  return nullptr;
}

// The change tells these registrations (a unit attention each).
void tell(Reservations& s, std::vector<Registration> whom, uint16_t code, bool abort = false) {
  if (whom.empty()) return;
  for (auto& r : whom) r.key = 0;
  s.told = std::move(whom);
  s.told_code = code;
  s.told_abort = abort;
  ++s.attention;
}

std::vector<Registration> others(const Reservations& s, const Nexus& who) {
  std::vector<Registration> out;
  for (const auto& r : s.registrations)
    if (!r.holds(who)) out.push_back(r);
  return out;
}

// Removes the registrations `drop` picks (into `removed`), keeping the
// reservation with its holder; it ends if its holder goes (all-registrants
// types: once no registrant is left).
template <class Pred>
void remove_registrations(Reservations& s, Pred drop, std::vector<Registration>& removed) {
  const bool held_by_one = s.type != 0 && !all_registrants(s.type);
  const Registration holder =
      held_by_one && s.holder < s.registrations.size() ? s.registrations[s.holder] : Registration{};
  std::vector<Registration> kept;
  for (auto& r : s.registrations) (drop(r) ? removed : kept).push_back(r);
  s.registrations = std::move(kept);
  if (held_by_one) {
    auto it = std::find(s.registrations.begin(), s.registrations.end(), holder);
    if (it == s.registrations.end()) s.type = 0, s.holder = 0;
    else s.holder = static_cast<uint32_t>(it - s.registrations.begin());
  }
  if (s.type != 0 && all_registrants(s.type) && s.registrations.empty()) s.type = 0;
}

ReservationOutcome register_key(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  const bool ignore = rq.kind == Kind::register_and_ignore;
  Registration* reg = registration_of(s, who);
  if (!reg) {
    if (!ignore && rq.key != 0) return conflict();
    if (rq.action_key == 0) return good();  // nothing to register
    // With SPEC_I_PT, the initiator ports (or devices) named too, through
    // the same target port (or all): each one not registered yet, else
    // nothing is (a device clashes with its ports).
    std::vector<Registration> added{{who.initiator, who.port, rq.all_ports, rq.action_key}};
    for (const std::string& port : rq.specified) {
      auto clash = [&](const Registration& r) {
        return (covers(r.initiator, port) || covers(port, r.initiator)) &&
               (r.all_ports || rq.all_ports || r.port == who.port);
      };
      if (std::any_of(s.registrations.begin(), s.registrations.end(), clash) ||
          std::any_of(added.begin(), added.end(), clash))
        return refuse(R::invalid_field_in_parameter_list);
      added.push_back({port, who.port, rq.all_ports, rq.action_key});
    }
    if (s.registrations.size() + added.size() > kMaxRegistrations)
      return refuse(R::no_resources);
    s.registrations.insert(s.registrations.end(), added.begin(), added.end());
    ++s.generation;
    s.aptpl = rq.aptpl;
    return good();
  }
  if (!ignore && rq.key != reg->key) return conflict();
  // SPEC_I_PT registers others along with an unregistered nexus only.
  if (!rq.specified.empty()) return refuse(R::invalid_field_in_parameter_list);
  if (rq.action_key != 0) {
    reg->key = rq.action_key;
  } else {
    // Unregistering the holder of a registrants-only reservation releases
    // it; the other registrants are told.
    const uint8_t before = s.type;
    const Registration gone = *reg;
    std::vector<Registration> removed;
    remove_registrations(s, [&](const Registration& r) { return r == gone; }, removed);
    if (before != 0 && s.type == 0 && !all_registrants(before) && registrants_served(before))
      tell(s, others(s, who), kReservationsReleased);
  }
  ++s.generation;
  s.aptpl = rq.aptpl;
  return good();
}

ReservationOutcome reserve(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  Registration* reg = registration_of(s, who);
  if (!reg || rq.key != reg->key) return conflict();
  if (rq.scope != 0 || !valid_type(rq.type)) return refuse(R::invalid_field_in_cdb);
  if (s.type != 0) {
    if (s.holds_reservation(who) && s.type == rq.type) return good();
    return conflict();
  }
  s.type = rq.type;
  s.holder = static_cast<uint32_t>(reg - s.registrations.data());
  return good();
}

ReservationOutcome release(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  Registration* reg = registration_of(s, who);
  if (!reg || rq.key != reg->key) return conflict();
  if (s.type == 0 || !s.holds_reservation(who)) return good();  // nothing of its to release
  if (rq.scope != 0 || rq.type != s.type) return refuse(R::invalid_release);
  const uint8_t before = s.type;
  s.type = 0;
  s.holder = 0;
  if (registrants_served(before)) tell(s, others(s, who), kReservationsReleased);
  return good();
}

ReservationOutcome clear(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  Registration* reg = registration_of(s, who);
  if (!reg || rq.key != reg->key) return conflict();
  tell(s, others(s, who), kReservationsPreempted);
  s.registrations.clear();
  s.type = 0;
  s.holder = 0;
  ++s.generation;
  return good();
}

ReservationOutcome preempt(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  Registration* reg = registration_of(s, who);
  if (!reg || rq.key != reg->key) return conflict();
  const Registration self = *reg;
  std::vector<Registration> removed;
  // Taking the reservation: from its holder (its key named), or from all
  // registrants (key 0 under an all-registrants type).
  const bool takes = s.type != 0 && (all_registrants(s.type)
                                         ? rq.action_key == 0
                                         : s.registrations[s.holder].key == rq.action_key);
  if (takes) {
    if (rq.scope != 0 || !valid_type(rq.type)) return refuse(R::invalid_field_in_cdb);
    const bool everyone = all_registrants(s.type);
    remove_registrations(
        s,
        [&](const Registration& r) {
          return !(r == self) && (everyone || r.key == rq.action_key);
        },
        removed);
    auto it = std::find(s.registrations.begin(), s.registrations.end(), self);
    s.type = rq.type;
    s.holder = static_cast<uint32_t>(it - s.registrations.begin());
  } else {
    // Only registrations go: those with the key named.
    if (rq.action_key == 0) return refuse(R::invalid_field_in_parameter_list);
    remove_registrations(
        s, [&](const Registration& r) { return r.key == rq.action_key; }, removed);
    if (removed.empty()) return conflict();
  }
  std::erase_if(removed, [&](const Registration& r) { return r == self; });
  tell(s, std::move(removed), kRegistrationsPreempted, rq.kind == Kind::preempt_and_abort);
  ++s.generation;
  return good();
}

// REGISTER AND MOVE (SPC-4 5.13.8): the holder hands its reservation, of
// the same type, to another I_T nexus, registered with the service action
// key (its key replaced if it was registered), and with UNREG leaves.
ReservationOutcome register_and_move(Reservations& s, const Nexus& who,
                                     const ReservationRequest& rq) {
  Registration* reg = registration_of(s, who);
  if (!reg || rq.key != reg->key) return conflict();
  // Only the holder of a reservation held by one may move it.
  if (s.type == 0 || all_registrants(s.type) || !s.holds_reservation(who)) return conflict();
  if (rq.action_key == 0 || rq.move_to.initiator.empty() || rq.move_to.port == 0 ||
      rq.move_to == who)
    return refuse(R::invalid_field_in_parameter_list);
  const Registration self = *reg;
  // (A registration made with ALL_TG_PT holds the nexus through every port:
  // the sender's own is not another nexus's.)
  Registration* there = registration_of(s, rq.move_to);
  if (there == reg) return refuse(R::invalid_field_in_parameter_list);
  if (!there) {
    if (s.registrations.size() >= kMaxRegistrations) return refuse(R::no_resources);
    s.registrations.push_back({rq.move_to.initiator, rq.move_to.port, false, rq.action_key});
    there = &s.registrations.back();
  }
  there->key = rq.action_key;
  const Registration moved_to = *there;
  if (rq.unregister) {
    std::erase(s.registrations, self);
  }
  auto it = std::find(s.registrations.begin(), s.registrations.end(), moved_to);
  s.holder = static_cast<uint32_t>(it - s.registrations.begin());
  s.aptpl = rq.aptpl;
  ++s.generation;
  return good();
}

ReservationOutcome apply_to(Reservations& s, const Nexus& who, const ReservationRequest& rq) {
  switch (rq.kind) {
    case Kind::reserve_spc2:
      // Not while persistent reservations are in use (SPC-4 5.13.3).
      if (!s.registrations.empty() || s.type != 0) return conflict();
      if (s.reserved && !(s.reserved_by == who)) return conflict();
      s.reserved = true;
      s.reserved_by = who;
      return good();
    case Kind::release_spc2:
    case Kind::nexus_lost:
      // Another nexus's RELEASE changes nothing and is GOOD.
      if (s.reserved && s.reserved_by == who) s.reserved = false, s.reserved_by = {};
      return good();
    case Kind::reset:
      s.reserved = false;
      s.reserved_by = {};
      return good();
    case Kind::administrator_clear: {
      std::vector<Registration> whom = s.registrations;
      if (s.reserved) whom.push_back({s.reserved_by.initiator, s.reserved_by.port, false, 0});
      if (!s.registrations.empty()) ++s.generation;
      tell(s, std::move(whom), kReservationsPreempted);
      s.registrations.clear();
      s.type = 0;
      s.holder = 0;
      s.reserved = false;
      s.reserved_by = {};
      return good();
    }
    default:
      break;
  }
  // While an SPC-2 reservation holds, persistent reservation commands
  // conflict whoever sends them (SPC-3 5.6.3).
  if (s.reserved) return conflict();
  switch (rq.kind) {
    case Kind::register_key:
    case Kind::register_and_ignore: return register_key(s, who, rq);
    case Kind::register_and_move: return register_and_move(s, who, rq);
    case Kind::reserve: return reserve(s, who, rq);
    case Kind::release: return release(s, who, rq);
    case Kind::clear: return clear(s, who, rq);
    case Kind::preempt:
    case Kind::preempt_and_abort: return preempt(s, who, rq);
    default: return refuse(R::invalid_field_in_cdb);
  }
}

}  // namespace

bool all_registrants(uint8_t type) {
  return type == kWriteExclusiveAllRegistrants || type == kExclusiveAccessAllRegistrants;
}

const Registration* Reservations::registration_of(const Nexus& n) const {
  for (const auto& r : registrations)
    if (r.holds(n)) return &r;
  return nullptr;
}

bool Reservations::holds_reservation(const Nexus& n) const {
  if (type == 0) return false;
  if (all_registrants(type)) return registration_of(n) != nullptr;
  return holder < registrations.size() && registrations[holder].holds(n);
}

ReservationOutcome apply_request(Reservations& state, const Nexus& who, const ReservationRequest& rq) {
  Reservations next = state;
  ReservationOutcome out = apply_to(next, who, rq);
  if (out.result == ReservationResult::good && !(next == state)) {
    state = std::move(next);
    out.changed = true;
  }
  return out;
}

bool registrants_served(uint8_t t) { return t >= kWriteExclusiveRegistrantsOnly && t <= 8; }

bool exclusive_access(uint8_t t) {
  return t == kExclusiveAccess || t == kExclusiveAccessRegistrantsOnly ||
         t == kExclusiveAccessAllRegistrants;
}

const char* reservation_type_name(uint8_t type) {
  switch (type) {
    case 0: return "none";
    case kWriteExclusive: return "write_exclusive";
    case kExclusiveAccess: return "exclusive_access";
    case kWriteExclusiveRegistrantsOnly: return "write_exclusive_registrants_only";
    case kExclusiveAccessRegistrantsOnly: return "exclusive_access_registrants_only";
    case kWriteExclusiveAllRegistrants: return "write_exclusive_all_registrants";
    case kExclusiveAccessAllRegistrants: return "exclusive_access_all_registrants";
  }
  return "unknown";
}

bool told(const Reservations& s, const Nexus& who, uint16_t& code) {
  for (const auto& r : s.told)
    if (r.holds(who)) {
      code = s.told_code;
      return true;
    }
  return false;
}

}  // namespace sve

// SCSI reservations as cluster state (docs/iscsi.md): a host's PERSISTENT
// RESERVE OUT, RESERVE or RELEASE is applied to the committed model by the
// rules in model/reservations.hpp and committed, so that every node
// enforces the same reservations and they outlive any node.
#include <algorithm>
#include <cstdio>

#include "cluster/config_args.hpp"
#include "cluster/config_service.hpp"

namespace sve {

using namespace config_args;

// What `vdisk show` says of them: who is registered (each nexus, through
// which node's port, its key), the persistent reservation and its holder,
// an SPC-2 reservation.
nlohmann::json describe_reservations(const Reservations& r) {
  nlohmann::json registrations = nlohmann::json::array();
  for (size_t i = 0; i < r.registrations.size(); ++i) {
    const Registration& g = r.registrations[i];
    char key[19];
    std::snprintf(key, sizeof key, "0x%016llx", static_cast<unsigned long long>(g.key));
    const bool holder = r.type != 0 && (all_registrants(r.type) || r.holder == i);
    registrations.push_back({{"initiator", g.initiator},
                             {"port", g.all_ports ? nlohmann::json("all") : nlohmann::json(g.port)},
                             {"key", key},
                             {"holder", holder}});
  }
  nlohmann::json d = {{"generation", r.generation},
                      {"type", reservation_type_name(r.type)},
                      {"aptpl", r.aptpl},
                      {"registrations", registrations}};
  if (r.reserved)
    d["reserved_by"] = {{"initiator", r.reserved_by.initiator}, {"port", r.reserved_by.port}};
  return d;
}

Result<ReservationOutcome> ConfigService::apply_reservation(uint32_t vdisk, const Nexus& who,
                                                          const ReservationRequest& request) {
  if (who.initiator.empty() || who.initiator.size() > kMaxInitiatorPortBytes)
    return make_error("a reservation from an unnamed or overlong initiator port", EINVAL);
  ReservationOutcome outcome;
  bool unchanged = false;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    unchanged = false;
    if (!next.find_vdisk(vdisk)) {
      outcome = {ReservationResult::no_unit, false};
      unchanged = true;
      return ok_status();
    }
    auto it = std::find_if(next.reservations.begin(), next.reservations.end(),
                           [&](const VdiskReservations& r) { return r.vdisk == vdisk; });
    Reservations state = it == next.reservations.end() ? Reservations{} : it->state;
    outcome = apply_request(state, who, request);
    if (!outcome.changed) {
      unchanged = true;
      return ok_status();
    }
    // (Kept once made, even empty: PRgeneration only grows.)
    if (it == next.reservations.end()) next.reservations.push_back({vdisk, std::move(state)});
    else it->state = std::move(state);
    return ok_status();
  }, [&] { return !unchanged; });
  if (!st) return st.error();
  return outcome;
}

// svectl vdisk clear-reservations: what hosts left behind (a host that died
// holding a reservation nobody else may preempt, say) ends; each nexus that
// held something hears RESERVATIONS PREEMPTED on its next command.
Result<nlohmann::json> ConfigService::vdisk_clear_reservations(const nlohmann::json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  Reservations before;
  bool unchanged = false;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    unchanged = false;
    const VdiskConfig* v = next.find_vdisk(name.value());
    if (!v) return make_error("no vdisk '" + name.value() + "'", ENOENT);
    auto it = std::find_if(next.reservations.begin(), next.reservations.end(),
                           [&](const VdiskReservations& r) { return r.vdisk == v->id; });
    before = it == next.reservations.end() ? Reservations{} : it->state;
    if (it == next.reservations.end()) {
      unchanged = true;
      return ok_status();
    }
    ReservationRequest clear;
    clear.kind = ReservationRequest::Kind::administrator_clear;
    unchanged = !apply_request(it->state, Nexus{}, clear).changed;
    return ok_status();
  }, [&] { return !unchanged; });
  if (!st) return st.error();
  nlohmann::json out;
  out["name"] = name.value();
  out["registrations"] = before.registrations.size();
  out["type"] = reservation_type_name(before.type);
  out["reserved"] = before.reserved;
  return out;
}

}  // namespace sve

// SCSI reservations as cluster state (docs/iscsi.md): a host's PERSISTENT
// RESERVE OUT, RESERVE or RELEASE is applied to the committed model by the
// rules in model/reservations.hpp and committed, so that every node
// enforces the same reservations and they outlive any node.
#include <algorithm>

#include "cluster/config_service.hpp"

namespace sve {

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

}  // namespace sve

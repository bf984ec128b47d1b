#include "io/scsi/unit_attentions.hpp"

#include <algorithm>

#include "io/scsi/scsi_internal.hpp"

namespace sve::scsi {

void UnitAttentions::establish(uint16_t lun, const Sense& s) {
  for (const Pending& p : pending_)
    if (p.lun == lun && p.sense == s) return;
  if (pending_.size() >= kMaxPending) return;
  pending_.push_back({lun, s});
}

std::optional<Sense> UnitAttentions::take(uint16_t lun, uint8_t opcode) {
  if (pending_.empty() || opcode == kInquiry || opcode == kReportLuns) return std::nullopt;
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const Pending& p) { return p.lun == lun; });
  if (it == pending_.end()) return std::nullopt;
  Sense s = it->sense;
  pending_.erase(it);
  return s;
}

}  // namespace sve::scsi

#pragma once
// The unit attention conditions of one I_T nexus (SAM-5 5.14, SPC-4 5.14):
// established when something the initiator did not do changed its logical
// units (a reset, a new capacity, LUNs added); each is reported once, as the
// CHECK CONDITION of the next command to its LUN, instead of running it.
// INQUIRY and REPORT LUNS run and leave them pending; REQUEST SENSE returns
// the oldest as its sense data and clears it.
#include <cstdint>
#include <optional>
#include <vector>

#include "io/scsi/scsi_commands.hpp"

namespace sve::scsi {

namespace sense {
inline constexpr Sense reset_occurred{0x06, 0x29, 0x00};        // power on, reset, or bus device reset
inline constexpr Sense lun_reset_occurred{0x06, 0x29, 0x03};    // bus device reset function occurred
inline constexpr Sense capacity_changed{0x06, 0x2a, 0x09};
inline constexpr Sense luns_changed{0x06, 0x3f, 0x0e};          // reported LUNs data has changed
inline constexpr Sense access_state_changed{0x06, 0x2a, 0x06};  // asymmetric access state changed
}  // namespace sense

class UnitAttentions {
 public:
  // At most this many wait; more of the same LUN are dropped (the oldest
  // tells the initiator to look again anyway).
  static constexpr size_t kMaxPending = 64;

  // A condition for `lun` (one pending per LUN and sense).
  void establish(uint16_t lun, const Sense& s);

  // What a command with `opcode` to `lun` meets: a condition to report
  // (cleared now) or nothing (it runs). For REQUEST SENSE the caller puts
  // the condition in the sense data instead of failing the command.
  std::optional<Sense> take(uint16_t lun, uint8_t opcode);

  bool empty() const { return pending_.empty(); }
  size_t size() const { return pending_.size(); }

 private:
  struct Pending {
    uint16_t lun;
    Sense sense;
  };
  std::vector<Pending> pending_;  // oldest first
};

}  // namespace sve::scsi

#pragma once
// Fault injection on mdisks, as a facility of its own (in the manner of
// SPDK's error bdev): inserted just above the back end only on a node
// started with --enable-chaos, so that a node without the chaos monkey
// pays nothing for it. For as long as the chaos monkey's table
// (faults/mdisk_faults.hpp) says, every request to a failed mdisk completes
// with EIO, and every request to a stalled one waits here until the stall
// ends (checked every tick); the others pass straight down, and their
// completions go back to their sender without passing through here.
#include <cstdint>
#include <deque>
#include <memory>

#include "facility/facility.hpp"
#include "faults/mdisk_faults.hpp"

namespace sve {

struct FaultStats {
  uint64_t failed = 0;   // completed with EIO
  uint64_t stalled = 0;  // held until their mdisk's stall ended
};

class MdiskFaultFacility final : public Facility {
 public:
  MdiskFaultFacility(IoServer& lower, std::shared_ptr<const MdiskFaults> faults)
      : lower_(lower), faults_(std::move(faults)) {}

  const char* kind() const override { return "faults"; }
  void submit(IoRequestPtr request) override;
  uint64_t tick_ms() const override { return 10; }
  void tick(uint64_t now_ms) override;
  nlohmann::json inspect() const override;

 private:
  // The verdict for a request now: true if this facility took it.
  bool intercept(IoRequestPtr& request, uint64_t now_ms);

  IoServer& lower_;
  std::shared_ptr<const MdiskFaults> faults_;
  std::deque<IoRequestPtr> held_;
  FaultStats stats_;
};

}  // namespace sve

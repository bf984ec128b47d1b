#pragma once
// The atomic facility: COMPARE AND WRITE and ORWRITE at the vdisk's owner, between
// forward and the cache. Every write to a vdisk reaches the owner's core
// through here (a host's own, or one forwarded by another node), so here
// a compare-and-write can be made atomic against all of them: no write to
// its vdisk runs between its read and its write (VMware's ATS lock, SBC-3
// 5.2, relies on exactly that).
//
// The price for every other request is small: reads, flushes and block
// status pass straight down; writes pass too, counted by the generation
// they were sent in (one intercept). A compare-and-write starts a new
// generation and waits for the writes of the earlier ones to complete on
// this core; meanwhile and until it is done, new writes to its vdisk (and
// other compare-and-writes of it) wait here, in their order. It then reads
// the range, compares it with the first half of its buffer, and if equal
// writes the second half (with its FUA); a difference fails it with
// EILSEQ (MISCOMPARE) and writes nothing. An or-write (SBC-3's ORWRITE)
// waits the same way, reads the range, ORs its data into it and writes the
// result: no write of the range can come between and be lost.
//
// Not thread-safe: the core's thread runs everything.
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>

#include "facility/facility.hpp"

namespace sve {

inline constexpr const char* kAtomicFacility = "atomic";

struct AtomicStats {
  uint64_t compare_and_writes = 0;
  uint64_t or_writes = 0;
  uint64_t miscompares = 0;
  uint64_t waited = 0;      // writes (and compare-and-writes) held back
};

class AtomicFacility final : public Facility {
 public:
  explicit AtomicFacility(IoServer& lower) : lower_(lower) {}
  ~AtomicFacility() override;

  const char* kind() const override { return kAtomicFacility; }
  void submit(IoRequestPtr request) override;
  void io_done(IoRequestPtr request) override;
  nlohmann::json inspect() const override;
  const AtomicStats& stats() const { return stats_; }

 private:
  // A compare-and-write (or an or-write) under way: its request, the
  // generation it waits for, and the range read back.
  struct Caw {
    IoRequestPtr request;
    uint64_t waits_for = 0;   // every write sent in a generation up to this one done
    bool running = false;     // read (or write) sent
    BufferRef medium;
  };
  // A vdisk with a compare-and-write under way.
  struct Vol {
    std::unique_ptr<Caw> caw;
    std::deque<IoRequestPtr> waiting;  // writes and compare-and-writes, in order
  };

  void pass_write(IoRequestPtr request);
  bool begin(uint32_t vdisk, Vol& v, IoRequestPtr request);
  void forget_done();
  void maybe_run(uint32_t vdisk);
  void read_done(uint32_t vdisk, IoRequestPtr read);
  void or_into_medium(uint32_t vdisk, Caw& c);
  void write_range(uint32_t vdisk, const IoRequest& r, BufferRef data, uint64_t at);
  void write_done(uint32_t vdisk, IoRequestPtr write);
  void finish(uint32_t vdisk, int status);
  bool drained(uint64_t generation) const;
  void write_completed(uint64_t generation);

  IoServer& lower_;
  // Writes in flight by the generation they were sent in: the current
  // one's, and older_[i] for generation base_ + i (those not yet done).
  uint64_t generation_ = 0;
  uint64_t current_writes_ = 0;
  std::deque<uint64_t> older_;
  uint64_t base_ = 0;
  std::unordered_map<uint32_t, Vol> vols_;
  AtomicStats stats_;
};

}  // namespace sve

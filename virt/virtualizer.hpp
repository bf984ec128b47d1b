#pragma once
// The virtualization facility's logic, free of the actor runtime: maps a
// request on a vdisk onto mdisk pieces, sends them to its IOServer, and joins
// their completions into one completion towards its IOClient.
//
// Pieces are request contexts from the core's RequestPool, charged to this
// facility's account, all pieces of a request at once. When the account has
// none to give, requests wait in arrival order (never fail) and go on when
// pieces come back. Without a pool (tests), pieces come from the heap.
//
// Not thread-safe: one core's thread runs submit and the piece completions
// (the pieces' completions arrive on the core that submitted them).
#include <cstdint>
#include <deque>
#include <memory>

#include "io/request_pool.hpp"
#include "facility/facility.hpp"
#include "io/protocol.hpp"
#include "model/virt_map.hpp"

namespace sve {

struct VirtualizerStats {
  uint64_t requests = 0;
  uint64_t pieces = 0;
  uint64_t split_requests = 0;    // requests that needed more than one piece
  uint64_t waited_for_pieces = 0; // requests that waited for request contexts
};

// One host request becomes up to kMaxPieces requests of the facility's
// own: it keeps four requests' worth of contexts reserved on each core
// (CoreIo hands the account out under this name).
inline constexpr const char* kVirtFacility = "virt";
inline constexpr uint32_t kVirtRequestReserve = 4 * kMaxPieces;

class Virtualizer final : public Facility {
 public:
  explicit Virtualizer(IoServer& lower, RequestPool* pool = nullptr,
                       PoolAccount* account = nullptr);
  ~Virtualizer() override;

  const char* kind() const override { return kVirtFacility; }
  void set_map(std::shared_ptr<const VirtMap> map) { map_ = std::move(map); }
  void set_view(const FacilityView& view) override {
    if (view.map) set_map(view.map);
  }
  void submit(IoRequestPtr request) override;
  // A piece's completion (this object is every piece's client).
  void io_done(IoRequestPtr piece) override;
  nlohmann::json inspect() const override;
  const VirtualizerStats& stats() const { return stats_; }
  size_t waiting() const { return waiting_.size(); }

 private:
  struct PieceWaiter final : PoolWaiter {
    Virtualizer* owner = nullptr;
    bool on_grant() override;
  };
  struct Plan {
    IoRequestPtr request;
    uint32_t pieces = 0;
  };
  // Cuts the request into scratch_ and returns how many pieces it needs;
  // 0 with the request completed (error, or nothing to do).
  uint32_t plan(IoRequestPtr& request);
  // Sends the pieces. `planned`: scratch_ holds this request's pieces.
  void issue(IoRequestPtr request, uint32_t pieces, bool charged, bool planned);
  IoRequestPtr new_piece();

  IoServer& lower_;
  RequestPool* pool_;
  PoolAccount* account_;
  std::shared_ptr<const VirtMap> map_;
  VirtualizerStats stats_;
  PieceList scratch_;
  std::deque<Plan> waiting_;  // requests whose pieces are not granted yet
  PieceWaiter waiter_;        // queued on account_ for waiting_.front()
};

}  // namespace sve

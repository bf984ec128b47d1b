#pragma once
// The virtualization facility's logic, free of the actor runtime: maps a
// request on a vdisk onto mdisk pieces, sends them to its IOServer, and joins
// their completions into one completion towards its IOClient.
//
// Not thread-safe: the owner (one actor) serialises submit and piece_done.
#include <cstdint>
#include <memory>

#include "io/protocol.hpp"
#include "virt/virt_map.hpp"

namespace sve {

struct VirtualizerStats {
  uint64_t requests = 0;
  uint64_t pieces = 0;
  uint64_t split_requests = 0;  // requests that needed more than one piece
};

class Virtualizer {
 public:
  // `lower` receives the pieces; their completions must come back to
  // `piece_client`, whose io_done forwards to piece_done() on the owner.
  Virtualizer(IoServer& lower, IoClient& piece_client)
      : lower_(lower), piece_client_(piece_client) {}

  void set_map(std::shared_ptr<const VirtMap> map) { map_ = std::move(map); }
  void submit(IoRequestPtr request);
  void piece_done(IoRequestPtr piece);
  const VirtualizerStats& stats() const { return stats_; }

 private:
  IoRequestPtr make_piece(const IoRequestPtr& parent, uint32_t mdisk_id,
                          uint64_t offset, uint64_t length, uint64_t request_offset);

  IoServer& lower_;
  IoClient& piece_client_;
  std::shared_ptr<const VirtMap> map_;
  VirtualizerStats stats_;
};

}  // namespace sve

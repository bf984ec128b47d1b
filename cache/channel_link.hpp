#pragma once
// The mirrored cache's copies over the node-to-node data channel
// (io/channel/) instead of the interconnect actor: on the core's
// connections to its partner (PeerChannels), on the core's own ring.
//
// Outbound (ChannelMirrorLink, the cache partition's MirrorLink): a copy
// goes on the partner's channel, sent from the batch itself; its answer
// comes back on the same connection to mirror_done(). Until the channel is
// up, copies and releases take the fallback link (the interconnect actor),
// so nothing waits on the channel. A cut connection fails its unanswered
// copies; the cache sends them again on its next tick, by whichever path is
// up then.
//
// Inbound: the partner's copies go from the channel's receive buffer into
// this partition's NVRAM (one copy), answered on the same connection.
//
// A batch that names the partner's forward id (a write the partner
// forwarded here, of whole blocks) goes as a copy by reference: the
// numbers only; the partner keeps its copy from the request it still holds
// (peer_channels.cpp) and acknowledges that write once it has.
//
// Everything here runs on the core's thread. No CAF.
#include <cstdint>
#include <memory>
#include <vector>

#include "cache/cache_facility.hpp"
#include "io/channel/peer_channels.hpp"

namespace sve {

struct ChannelLinkStats {
  uint64_t copies_sent = 0;       // batches sent on the channel
  uint64_t copies_fallback = 0;   // batches that took the fallback link
  uint64_t copies_received = 0;   // partner batches stored from the channel
  uint64_t copies_by_reference = 0;  // of those sent, as numbers: the partner had the data
};

class ChannelMirrorLink final : public MirrorLink, public channel::MirrorEndpoint {
 public:
  ChannelMirrorLink(channel::PeerChannels& channels, MirrorLink* fallback);

  void bind(CacheFacility* cache) { cache_ = cache; }

  // MirrorLink: this partition's copies.
  void mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) override;
  void mirror_shared(uint32_t partner, std::shared_ptr<const MirrorBatch> batch,
                     uint64_t id) override;
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override;
  nlohmann::json inspect() const override;
  const ChannelLinkStats& stats() const { return stats_; }

  // MirrorEndpoint: the partner's.
  int32_t on_mirror(uint32_t from, const channel::MirrorIn& in) override;
  void on_release(uint32_t from, const channel::ReleaseIn& in) override;
  void on_mirror_answer(uint64_t id, int32_t status) override;

 private:
  channel::PeerChannels& channels_;
  MirrorLink* fallback_;
  CacheFacility* cache_ = nullptr;
  ChannelLinkStats stats_;
};

}  // namespace sve

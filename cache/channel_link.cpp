#include "cache/channel_link.hpp"

#include <cerrno>

namespace sve {

ChannelMirrorLink::ChannelMirrorLink(channel::PeerChannels& channels, MirrorLink* fallback)
    : channels_(channels), fallback_(fallback) {
  channels_.bind(static_cast<channel::MirrorEndpoint*>(this));
}

void ChannelMirrorLink::on_mirror_answer(uint64_t id, int32_t status) {
  if (cache_) cache_->mirror_done(id, status == 0);
}

int32_t ChannelMirrorLink::on_mirror(uint32_t from, const channel::MirrorIn& in) {
  (void)from;
  const channel::FrameHeader& h = *in.header;
  const channel::PeerChannelsSetup& setup = channels_.setup();
  // Only the partition of this core; only while this node may take copies
  // (as the interconnect's path checks).
  if (!cache_ || h.vdisk % setup.cores != setup.core) return EXDEV;
  if (!cache_->takes_copies()) return ESTALE;
  ++stats_.copies_received;
  return cache_->store_mirror(
      MirrorCopies{h.origin, h.vdisk, h.epoch, h.count, in.blocks, in.seqs, in.data});
}

void ChannelMirrorLink::on_release(uint32_t from, const channel::ReleaseIn& in) {
  (void)from;
  const channel::FrameHeader& h = *in.header;
  const channel::PeerChannelsSetup& setup = channels_.setup();
  if (!cache_ || h.vdisk % setup.cores != setup.core) return;
  cache_->release_mirror(h.origin, h.vdisk, {in.blocks, h.count}, {in.seqs, h.count});
}

void ChannelMirrorLink::mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  ++stats_.copies_fallback;
  fallback_->mirror(partner, batch, id);
}

void ChannelMirrorLink::mirror_shared(uint32_t partner, std::shared_ptr<const MirrorBatch> batch,
                                      uint64_t id) {
  channel::DataChannel* c = channels_.up(partner);
  size_t n = batch->blocks.size();
  if (c && batch->forward_id && n > 0 && n <= channel::kMaxBlocks && batch->seqs.size() == n) {
    // The partner forwarded this write and holds its data: the numbers.
    channel::OutMirrorRef out;
    out.origin = batch->origin;
    out.vdisk = batch->vdisk;
    out.epoch = batch->epoch;
    out.id = id;
    out.forward_id = batch->forward_id;
    out.count = static_cast<uint32_t>(n);
    out.blocks = batch->blocks.data();
    out.seqs = batch->seqs.data();
    out.keep = batch;  // (the numbers are sent from it)
    if (c->send_mirror_ref(std::move(out))) {
      ++stats_.copies_sent;
      ++stats_.copies_by_reference;
      return;
    }
  }
  bool in_slots = batch->data.empty() && batch->block_data.size() == n;
  if (c && n > 0 && n <= channel::kMaxBlocks && batch->seqs.size() == n &&
      (in_slots || batch->data.size() == n * channel::kBlockBytes)) {
    channel::OutMirror out;
    out.origin = batch->origin;
    out.vdisk = batch->vdisk;
    out.epoch = batch->epoch;
    out.id = id;
    out.count = static_cast<uint32_t>(n);
    out.blocks = batch->blocks.data();
    out.seqs = batch->seqs.data();
    // From the batch, or from the slots it pins (no copy either way).
    out.data = in_slots ? nullptr : batch->data.data();
    out.block_data = in_slots ? batch->block_data.data() : nullptr;
    out.keep = batch;
    if (c->send_mirror(std::move(out))) {
      ++stats_.copies_sent;
      return;
    }
  }
  if (batch->data.empty() && !batch->block_data.empty())
    mirror(partner, gathered(*batch), id);
  else
    mirror(partner, *batch, id);
}

void ChannelMirrorLink::release(uint32_t partner, uint32_t vdisk,
                                const std::vector<uint64_t>& blocks,
                                const std::vector<uint64_t>& seqs) {
  channel::DataChannel* c = channels_.up(partner);
  if (c && blocks.size() <= channel::kMaxBlocks &&
      c->send_release(channels_.setup().self, vdisk, blocks, seqs))
    return;
  fallback_->release(partner, vdisk, blocks, seqs);
}

nlohmann::json ChannelMirrorLink::inspect() const {
  nlohmann::json j = channels_.inspect();
  j["copies_sent"] = stats_.copies_sent;
  j["copies_fallback"] = stats_.copies_fallback;
  j["copies_received"] = stats_.copies_received;
  j["copies_by_reference"] = stats_.copies_by_reference;
  return j;
}

}  // namespace sve

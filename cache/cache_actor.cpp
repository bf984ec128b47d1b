// The cache facility's actor: the generic facility actor (requests, views,
// its 20 ms tick, inspect), plus the partner node's copies as mirror /
// unmirror, and the link through which this partition's copies reach the
// partner.
#include <chrono>

#include "actors/facility_behavior.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "cache/cache_facility.hpp"
#include "io/reactor/core_io.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

constexpr auto kMirrorTimeout = std::chrono::seconds(5);

using Bytes = std::vector<char>;

}  // namespace

// Copies to the partner go through the node's interconnect actor, which
// passes them on to the partner's; the partner's partition answers this
// actor directly.
class ActorMirrorLink final : public MirrorLink {
 public:
  explicit ActorMirrorLink(caf::actor interconnect) : interconnect_(std::move(interconnect)) {}
  void bind(caf::event_based_actor* self, CacheFacility* cache) {
    self_ = self;
    cache_ = cache;
  }

  void mirror(uint32_t partner, const MirrorBatch& b, uint64_t id) override {
    CacheFacility* cache = cache_;
    self_->request(interconnect_, kMirrorTimeout, mirror_to_atom::value, partner, b.origin, b.vdisk,
                   b.epoch, b.blocks, b.seqs, b.data)
        .then([cache, id](int32_t status) { cache->mirror_done(id, status == 0); },
              [cache, id](caf::error&) { cache->mirror_done(id, false); });
  }
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override {
    self_->send(interconnect_, unmirror_to_atom::value, partner, vdisk, blocks, seqs);
  }

 private:
  caf::actor interconnect_;
  CacheFacility* cache_ = nullptr;
  caf::event_based_actor* self_ = nullptr;
};

std::unique_ptr<MirrorLink> make_mirror_link(caf::actor interconnect) {
  return std::make_unique<ActorMirrorLink>(std::move(interconnect));
}

caf::actor spawn_cache_actor(caf::actor_system& sys, unsigned core, CacheFacility& cache,
                             MirrorLink* mirror) {
  // Only the interconnect's link needs the actor (another, such as
  // sve-bench's, needs nothing).
  auto* link = dynamic_cast<ActorMirrorLink*>(mirror);
  auto init = [](FacilitySelf* self, CacheFacility* c, ActorMirrorLink* l, unsigned at) {
    if (l) l->bind(self, c);
    return facility_behavior(
        self, c, at,
        // The partner's copies, passed on by this node's interconnect.
        [self, c](mirror_atom, uint32_t origin, uint32_t vdisk, uint64_t epoch,
                  std::vector<uint64_t>& blocks, std::vector<uint64_t>& seqs, Bytes& data) {
          note(self, self->state.probe);
          MirrorBatch batch;
          batch.origin = origin;
          batch.vdisk = vdisk;
          batch.epoch = epoch;
          batch.blocks = std::move(blocks);
          batch.seqs = std::move(seqs);
          batch.data = std::move(data);
          return int32_t{c->store_mirror(batch)};
        },
        [c](unmirror_atom, uint32_t origin, uint32_t vdisk, std::vector<uint64_t>& blocks,
            std::vector<uint64_t>& seqs) { c->release_mirror(origin, vdisk, blocks, seqs); });
  };
  auto actor = sys.spawn<caf::lazy_init>(init, &cache, link, core);
  start_on_core(actor, core);
  return actor;
}

}  // namespace sve

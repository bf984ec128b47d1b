// The cache facility as an actor on one core: requests from its IOClient
// arrive as io_submit, a new configuration snapshot as virt_map, who owns
// which vdisk as routes, the partner node's copies as mirror / unmirror,
// and read-only questions (statistics) as tasks to run on the core. It
// ticks every 20 ms (resends, retries, the destage rate). Completions from
// below come back to the facility directly on this core's thread.
#include <chrono>

#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "cache/cache_facility.hpp"
#include "io/reactor/core_io.hpp"
#include "io/service_gate.hpp"

namespace sve {
namespace {

constexpr auto kTick = std::chrono::milliseconds(20);
constexpr auto kMirrorTimeout = std::chrono::seconds(5);

using Bytes = std::vector<char>;

struct CacheState {
  ActorProbe probe;
  static inline const char* name = "cache";
};

using Self = caf::stateful_actor<CacheState>;

}  // namespace

// Copies to the partner go through the node's interconnect actor, which
// passes them on to the partner's; the partner's partition answers this
// actor directly.
class ActorMirrorLink final : public MirrorLink {
 public:
  explicit ActorMirrorLink(caf::actor interconnect) : interconnect_(std::move(interconnect)) {}
  void bind(Self* self, CacheFacility* cache) {
    self_ = self;
    cache_ = cache;
  }

  void mirror(uint32_t partner, const MirrorBatch& b, uint64_t id) override {
    CacheFacility* cache = cache_;
    self_->request(interconnect_, kMirrorTimeout, mirror_atom::value, partner, b.origin, b.vdisk,
                   b.epoch, b.blocks, b.seqs, b.data)
        .then([cache, id](int32_t status) { cache->mirror_done(id, status == 0); },
              [cache, id](caf::error&) { cache->mirror_done(id, false); });
  }
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override {
    self_->send(interconnect_, unmirror_atom::value, partner, uint32_t{0}, vdisk, blocks, seqs);
  }

 private:
  caf::actor interconnect_;
  CacheFacility* cache_ = nullptr;
  Self* self_ = nullptr;
};

namespace {

caf::behavior cache_actor(Self* self, CacheFacility* cache, ActorMirrorLink* link, int core) {
  if (link) link->bind(self, cache);
  self->state.probe = {"cache/" + std::to_string(core), "facility", core};
  auto& probe = self->state.probe;
  self->send(self, tick_atom::value);
  return {
      [=, &probe](io_submit_atom, IoRequestPtr& request) {
        note(self, probe);
        cache->submit(std::move(request));
      },
      [=, &probe](virt_map_atom, VirtMapPtr& map) {
        note(self, probe);
        cache->set_map(std::move(map));
      },
      [=, &probe](routes_atom, RoutesPtr& routes) {
        note(self, probe);
        cache->set_routes(std::move(routes));
      },
      [=, &probe](trace_atom, uint32_t n) { probe.start_trace(n); },
      [=, &probe](inspect_atom) {
        CacheCounts c = cache->counts();
        const CachePartitionStats& s = cache->stats();
        nlohmann::json extents = nlohmann::json::array();
        for (const auto& e : cache->dirty_extents(64))
          extents.push_back({{"vdisk", e.vdisk}, {"offset", e.first_block * kCacheBlockBytes},
                             {"bytes", e.blocks * kCacheBlockBytes}});
        return probe.answer(
            self->mailbox().size(),
            {{"capacity_blocks", c.capacity}, {"clean", c.clean}, {"dirty", c.dirty},
             {"destaging", c.destaging}, {"dirty_extents", extents},
             {"requests_below", cache->in_flight()}, {"destaged_bytes", s.destaged_bytes},
             {"partner_copies", s.copies_held}, {"mirror_messages", s.mirror_batches},
             {"waits", s.waits}});
      },
      [=](tick_atom) {
        cache->tick(monotonic_ms());
        self->delayed_send(self, kTick, tick_atom::value);
      },
      // The partner's copies, passed on by this node's interconnect.
      [=, &probe](mirror_atom, uint32_t origin, uint32_t vdisk, uint64_t epoch,
                  std::vector<uint64_t>& blocks, std::vector<uint64_t>& seqs, Bytes& data) {
        note(self, probe);
        MirrorBatch batch{origin, vdisk, epoch, std::move(blocks), std::move(seqs),
                          std::move(data)};
        return int32_t{cache->store_mirror(batch)};
      },
      [=](unmirror_atom, uint32_t origin, uint32_t vdisk, std::vector<uint64_t>& blocks,
          std::vector<uint64_t>& seqs) { cache->release_mirror(origin, vdisk, blocks, seqs); },
      [=](run_atom, CoreTask& task) { task(); },
  };
}

}  // namespace

std::unique_ptr<MirrorLink> make_mirror_link(caf::actor interconnect) {
  return std::make_unique<ActorMirrorLink>(std::move(interconnect));
}

caf::actor spawn_cache_actor(caf::actor_system& sys, CoreIo& core, CacheFacility& cache,
                             MirrorLink* link) {
  auto actor = sys.spawn<caf::lazy_init>(cache_actor, &cache,
                                         static_cast<ActorMirrorLink*>(link),
                                         static_cast<int>(core.index()));
  pin_to_core(actor, core.index());
  return actor;
}

}  // namespace sve

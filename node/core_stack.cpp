#include "node/core_stack.hpp"

#include "actors/facility_actor.hpp"
#include "actors/spawn.hpp"

namespace sve {

CoreStack build_core_stack(caf::actor_system& sys, CoreIo& io, CoreCacheSetup cache,
                           IoServer* interconnect,
                           std::shared_ptr<const MdiskFaults> mdisk_faults, unsigned cores,
                           int node_core) {
  CoreStack core;
  core.io = &io;
  unsigned at = io.index();  // the reactor the actors are pinned to
  unsigned mine = node_core < 0 ? at : static_cast<unsigned>(node_core);  // the node's core
  core.backend_facility = std::make_unique<BackendFacility>(io.ring());
  core.backend_facility->set_fence(cache.gate);
  // (Before its actor starts: the first tick releases what it held.)
  core.backend_facility->hold_changes_until(monotonic_ms() + kRestartQuietMs);
  core.backend = spawn_backend_actor(sys, at, *core.backend_facility);
  IoServer* below_virt = core.backend_facility.get();
  if (mdisk_faults) {
    core.faults = std::make_unique<MdiskFaultFacility>(*below_virt, std::move(mdisk_faults));
    core.faults_actor = spawn_facility_actor(sys, at, *core.faults);
    below_virt = core.faults.get();
  }
  core.virt_facility = std::make_unique<Virtualizer>(*below_virt, &io.requests(),
                                                     io.facility_requests(kVirtFacility));
  core.virt = spawn_facility_actor(sys, at, *core.virt_facility);
  core.thin_facility = std::make_unique<ThinFacility>(*core.virt_facility, mine, cores);
  core.thin = spawn_facility_actor(sys, at, *core.thin_facility);
  core.flashcopy = std::make_unique<FlashCopyFacility>(*core.thin_facility, mine, cores);
  core.flashcopy_actor = spawn_facility_actor(sys, at, *core.flashcopy);
  core.flashcopy_return = std::make_unique<ActorPort>(core.flashcopy_actor);
  core.nvram = std::move(cache.nvram);
  core.mirror = std::move(cache.mirror);
  if (cache.data_channel) {
    cache.channel.ring = &io.ring();
    cache.channel.core = mine;
    core.channels = std::make_unique<channel::PeerChannels>(cache.channel);
  }
  MirrorLink* link = core.mirror.get();
  if (core.channels && link) {
    core.channel_link = std::make_unique<ChannelMirrorLink>(*core.channels, link);
    link = core.channel_link.get();
  }
  core.cache = std::make_unique<CacheFacility>(*core.flashcopy, cache.blocks, core.nvram.get(),
                                               link, cache.self);
  if (core.channel_link) core.channel_link->bind(core.cache.get());
  core.cache->set_gate(cache.gate);
  core.cache->set_allocation_query(core.thin_facility.get());
  core.cache_actor = spawn_cache_actor(sys, at, *core.cache, core.mirror.get());
  core.atomic = std::make_unique<AtomicFacility>(*core.cache);
  core.atomic_actor = spawn_facility_actor(sys, at, *core.atomic);
  if (core.channels && interconnect)
    core.forwarder =
        std::make_unique<ChannelForwarder>(*core.channels, *core.atomic, io, cache.gate);
  core.forward_return = std::make_unique<ActorPort>();
  core.forward = std::make_unique<ForwardFacility>(*core.atomic, interconnect,
                                                   core.forward_return.get(),
                                                   core.forwarder.get(), cache.gate, cache.hold_ms);
  core.forward_actor = spawn_facility_actor(sys, at, *core.forward);
  core.forward_return->bind(core.forward_actor);
  core.top = core.forward.get();
  return core;
}

void connect_core_stacks(std::vector<CoreStack>& cores) {
  std::vector<IoClient*> returns;
  for (CoreStack& core : cores) returns.push_back(core.flashcopy_return.get());
  for (size_t i = 0; i < cores.size(); ++i) {
    CoreStack& me = cores[i];
    std::vector<IoServer*> copy_of(cores.size(), nullptr), lower_of(cores.size(), nullptr);
    for (size_t j = 0; j < cores.size(); ++j) {
      if (j == i) continue;
      me.peer_ports.push_back(std::make_unique<ActorPort>(cores[j].flashcopy_actor));
      copy_of[j] = me.peer_ports.back().get();
      me.peer_ports.push_back(std::make_unique<ActorPort>(cores[j].thin));
      lower_of[j] = me.peer_ports.back().get();
    }
    me.flashcopy->set_peers(std::move(copy_of), std::move(lower_of), returns);
  }
}

std::vector<std::pair<std::string, caf::actor>> CoreStack::actors() const {
  std::vector<std::pair<std::string, caf::actor>> out{
      {"forward", forward_actor}, {"atomic", atomic_actor}, {"cache", cache_actor}, {"flashcopy", flashcopy_actor},
      {"thin", thin}, {"virt", virt}};
  if (faults_actor) out.emplace_back("faults", faults_actor);
  out.emplace_back("backend", backend);
  return out;
}

}  // namespace sve

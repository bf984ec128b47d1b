#pragma once
// The facility stack of one core, top to bottom. This is the one place that
// decides the order: front end -> forward (to the vdisk's owner node) ->
// atomic (compare-and-write) -> cache -> point-in-time copy -> thin ->
// virtualization -> [mdisk faults] -> back end. Later facilities (remote copy) are inserted here.
// Every facility of the stack lives on the core: a request goes down it by
// direct calls through the facility interface, and completions come back
// up the same way (those that happen inside a submit wait for the
// reactor's next turn: io/protocol.hpp). Each facility also has an actor,
// pinned to the core, for what must wait or comes from elsewhere: its
// control, timers, the debug shell, and requests from another core or
// node (the interconnect submits through the cache's actor).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "actors/actor_port.hpp"
#include "atomic/atomic_facility.hpp"
#include "backend/backend_facility.hpp"
#include "backend/fault_facility.hpp"
#include "cache/cache_facility.hpp"
#include "cache/channel_link.hpp"
#include "flashcopy/flashcopy_facility.hpp"
#include "io/channel/peer_channels.hpp"
#include "io/interconnect/channel_forwarder.hpp"
#include "io/interconnect/forward_facility.hpp"
#include "io/reactor/core_io.hpp"
#include "thin/thin_facility.hpp"
#include "virt/virtualizer.hpp"

namespace sve {

// Each facility is kept here (used only on the core's thread) beside its
// actor.
struct CoreStack {
  CoreIo* io = nullptr;
  std::unique_ptr<BackendFacility> backend_facility;
  caf::actor backend;
  std::unique_ptr<MdiskFaultFacility> faults;  // only with the chaos monkey
  caf::actor faults_actor;
  std::unique_ptr<Virtualizer> virt_facility;
  caf::actor virt;
  std::unique_ptr<ThinFacility> thin_facility;  // between the cache and virt
  caf::actor thin;
  std::unique_ptr<FlashCopyFacility> flashcopy;  // between the cache and thin
  caf::actor flashcopy_actor;
  std::unique_ptr<ActorPort> flashcopy_return;   // completions from other cores
  std::vector<std::unique_ptr<ActorPort>> peer_ports;  // other cores' facilities
  std::unique_ptr<CacheFacility> cache;  // used only on the core's thread
  std::unique_ptr<Nvram> nvram;
  std::unique_ptr<MirrorLink> mirror;  // through the interconnect actor
  // The data channel's connections of this core, if used, and what travels
  // on them: the cache's copies and forwarded requests.
  std::unique_ptr<channel::PeerChannels> channels;
  std::unique_ptr<ChannelMirrorLink> channel_link;
  std::unique_ptr<ChannelForwarder> forwarder;
  caf::actor cache_actor;
  // Between forward and the cache: where every write to a vdisk meets its
  // compare-and-writes at the owner (forwarded ones come in here too).
  std::unique_ptr<AtomicFacility> atomic;
  caf::actor atomic_actor;
  std::unique_ptr<ActorPort> forward_return;  // completions of forwarded requests
  std::unique_ptr<ForwardFacility> forward;   // used only on the core's thread
  caf::actor forward_actor;
  IoServer* top = nullptr;  // where the front end submits, on the core's thread

  // Its actors, top to bottom, each with its kind ("cache", ...).
  std::vector<std::pair<std::string, caf::actor>> actors() const;
};

// This core's share of the node's cache: `blocks` of 4 KiB; in a cluster,
// the core's non-volatile memory and how copies reach the partner, and
// this node's id.
struct CoreCacheSetup {
  uint32_t blocks = 0;
  std::unique_ptr<Nvram> nvram;
  std::unique_ptr<MirrorLink> mirror;
  uint32_t self = 0;
  const ServiceGate* gate = nullptr;  // the node's lease
  // How long a host's request waits at the top of the stack for the node
  // to serve again (between generations; 0: it fails at once).
  uint64_t hold_ms = 0;
  // The data channel (the mirror link above and the interconnect are the
  // fallbacks); the ring and core are filled in with the core's.
  bool data_channel = false;
  channel::PeerChannelsSetup channel;
};

// `interconnect`: where requests for other nodes' vdisks go (null: a
// standalone node). `mdisk_faults`: the chaos monkey's table, on a node
// started with --enable-chaos (null: no fault facility in the stack).
// `cores`: how many the node has (a vdisk is served by core id % cores).
// `node_core`: which of them this stack is, when that is not the reactor's
// index (sve-bench runs both nodes of a pair in one process; -1: the
// reactor's index).
CoreStack build_core_stack(caf::actor_system& sys, CoreIo& io, CoreCacheSetup cache,
                           IoServer* interconnect,
                           std::shared_ptr<const MdiskFaults> mdisk_faults = nullptr,
                           unsigned cores = 1, int node_core = -1);

// Once every core's stack is built: each core's point-in-time copy facility
// reaches the others' (and the thin layer under each) through ports.
void connect_core_stacks(std::vector<CoreStack>& cores);

}  // namespace sve

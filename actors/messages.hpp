#pragma once
// The typed messages between SVE's actors. Included only by the translation
// units that define actors: CAF headers are expensive to compile.
#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <string>

#include "model/ownership.hpp"
#include "hw/device/block_device.hpp"
#include "facility/facility.hpp"
#include "io/protocol.hpp"
#include "model/virt_map.hpp"

namespace sve {

// The I/O protocol: a request travels down with io_submit and its
// completion comes back once with io_done.
using io_submit_atom = caf::atom_constant<caf::atom("iosubmit")>;
using io_done_atom = caf::atom_constant<caf::atom("iodone")>;
// A new model / route snapshot to a facility (facility/facility.hpp).
using view_atom = caf::atom_constant<caf::atom("view")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using detach_atom = caf::atom_constant<caf::atom("detach")>;
// Admin API request (a JSON line) and its reply.
using admin_atom = caf::atom_constant<caf::atom("admin")>;
using audit_atom = caf::atom_constant<caf::atom("audit")>;
// A task to run on the receiving actor's core (slow path: set-up, stats).
using run_atom = caf::atom_constant<caf::atom("run")>;
// The cluster: a protocol message between nodes' cluster actors (cluster
// id, sender's node id, msgpack bytes), the heartbeat tick, a change of the
// virtualization model to commit or committed, and a request's deadline.
using cluster_atom = caf::atom_constant<caf::atom("cluster")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using commit_atom = caf::atom_constant<caf::atom("commit")>;
using model_atom = caf::atom_constant<caf::atom("model")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
// To a heartbeat link: the peer's address, or its cluster actor's handle.
using peer_atom = caf::atom_constant<caf::atom("peer")>;
// To the cluster actor: the configured node ids.
using members_atom = caf::atom_constant<caf::atom("members")>;

// Which node owns each vdisk (model/ownership.hpp), to the data path.
using routes_atom = caf::atom_constant<caf::atom("routes")>;
// The interconnect: a peer's interconnect actor is asked of its cluster
// actor; a request for a vdisk another node owns travels as fwd; the
// addresses of the cluster's nodes; a forwarded request's next attempt.
using interconnect_atom = caf::atom_constant<caf::atom("icon")>;
// A node's data channel port (io/channel/), asked by its partners.
using data_port_atom = caf::atom_constant<caf::atom("dataport")>;
using fwd_atom = caf::atom_constant<caf::atom("fwd")>;
using peers_atom = caf::atom_constant<caf::atom("peers")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
// Write-back copies for the partner node, and their release after destage.
using mirror_atom = caf::atom_constant<caf::atom("mirror")>;
using unmirror_atom = caf::atom_constant<caf::atom("unmirror")>;
// From a core to its node's interconnect: copies for, and releases to,
// partner node N (the first argument); the interconnect passes them on as
// mirror / unmirror.
using mirror_to_atom = caf::atom_constant<caf::atom("mirrorto")>;
using unmirror_to_atom = caf::atom_constant<caf::atom("unmirrto")>;
// A host reset a LUN (a vdisk) or the whole target through one node: the
// other nodes' sessions get the unit attention too (one target).
using lun_reset_atom = caf::atom_constant<caf::atom("lunreset")>;
// Whether every node's host ports enforce configuration version N (a
// reservation committed in it): asked of the interconnect, which asks its
// peers (each answers the version its ports follow).
using applied_atom = caf::atom_constant<caf::atom("applied")>;

// The debug shell: an actor describes itself (actors/actor_probe.hpp), or
// records the next N messages it handles.
using inspect_atom = caf::atom_constant<caf::atom("inspect")>;
using trace_atom = caf::atom_constant<caf::atom("trace")>;
// The shell's cluster view: a node's actors, gathered by its interconnect
// (shell), or every node's (shell, all).
using shell_atom = caf::atom_constant<caf::atom("shell")>;
using all_atom = caf::atom_constant<caf::atom("all")>;

// How a request reads in a trace of the debug shell.
inline std::string to_string(const IoRequestPtr& r) {
  if (!r) return "request(null)";
  return std::string(to_string(r->op)) + " volume " + std::to_string(r->volume) + " offset " +
         std::to_string(r->offset) + " length " + std::to_string(r->length) +
         (r->status ? " status " + std::to_string(r->status) : "");
}

using VirtMapPtr = std::shared_ptr<const VirtMap>;
using RoutesPtr = std::shared_ptr<const RouteTable>;
using BlockDevicePtr = std::shared_ptr<BlockDevice>;
using CoreTask = std::function<void()>;

// The cluster actor's answer to a commit of the model (commit_atom): a
// value, not a JSON line. A conflict means another change came first: redo
// the change on the newer model.
struct CommitOutcome {
  enum class Kind : uint8_t { committed, conflict, refused };
  Kind kind = Kind::refused;
  std::string error;  // why refused
};

}  // namespace sve

// These travel only between actors of one process: they hold pointers into
// the process's memory and are never serialised.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::IoRequestPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::VirtMapPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::RoutesPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::BlockDevicePtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::CoreTask)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::CommitOutcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sve::FacilityView)

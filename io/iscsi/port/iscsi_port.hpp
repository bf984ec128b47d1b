#pragma once
// The iSCSI host port (docs/iscsi.md): accepts TCP connections and runs
// each login on a short-lived thread (the slow, blocking part), a
// discovery session there to its end; a normal session's connection then
// moves to one core, where an IscsiConnection serves it on the core's ring
// and submits to the facility stacks. One target per cluster, its name the
// same on every node; this node's portal is its listener.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hw/port/host_port.hpp"
#include "io/iscsi/port/iscsi_connection.hpp"
#include "util/fd.hpp"

namespace sve {

struct IscsiCore {
  CoreIo* io = nullptr;
  IoServer* top = nullptr;  // the top of the core's facility stack
};

struct IscsiPortOptions {
  std::string target_name;  // empty: iqn.2026-12.org.sve:<configuration id>
  uint16_t portal_group = 1;  // this node's target port group (iscsi::port_group_of)
  size_t max_connections = 1024;
  uint32_t session_connections = 8;  // MaxConnections offered: a session's, to this node
  uint32_t handshake_timeout_ms = 30000;  // each step of a login, each discovery PDU
  uint32_t command_window = 128;
  const ServiceGate* gate = nullptr;  // closed: commands fail NOT READY
  uint64_t transition_ms = 0;  // (ConnectionSetup::transition_ms)
  // A host reset a vdisk's LUNs (or the target: `all`) through this node:
  // the other nodes' sessions are told by this (the node's own are
  // already), which calls `told` (any thread) once each has its tasks for
  // the unit out of its stack (peer_reset), or has not answered in time;
  // the reset is answered then.
  std::function<void(uint32_t vdisk, bool all, std::function<void()> told)> tell_peers_reset;
  // A reservation request (io/scsi/scsi_reservations.hpp) of nexus `who`
  // for `vdisk`: the node has the cluster apply it and calls `done` (any
  // thread) with the outcome once every node enforces it. None: reservation
  // commands are refused as unknown.
  std::function<void(uint32_t vdisk, const Nexus& who,
                     const ReservationRequest& request,
                     std::function<void(ReservationOutcome)> done)>
      reserve;
};

class IscsiPort final : public HostPort {
 public:
  IscsiPort(UniqueFd listener, std::string address, std::vector<IscsiCore> cores,
            iscsi::CorePost post, IscsiPortOptions options);
  ~IscsiPort() override;

  std::string describe() const override;
  void start() override;
  void stop() override;
  void set_exports(std::shared_ptr<const VirtMap> map) override;
  void set_paths(std::shared_ptr<const HostPaths> paths) override;
  // Another node's portal (its target port group is its id): SendTargets
  // lists it after this node's own, so that a host discovering through one
  // node learns every path.
  void set_peer_portal(uint32_t node, const std::string& host, uint16_t port);
  // A reset through another node's port: a unit attention for every
  // session here that reaches the vdisk (or every session), and their tasks
  // for it end (TASK ABORTED). `done` (on some core's thread) once none of
  // those tasks is left in a stack.
  void peer_reset(uint32_t vdisk, bool all, std::function<void()> done);
  size_t connections() const;  // sockets open: logging in, discovering, serving
  size_t sessions() const;     // normal sessions with a connection here
  // The newest configuration version (VirtMap::version) every connection
  // on every core follows: what was committed up to it is enforced here.
  uint64_t applied_version() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

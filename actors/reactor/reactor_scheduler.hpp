#pragma once
// The per-core reactor scheduler for CAF: one worker thread per core, pinned
// to it, with its own run queue and no work stealing. An actor lives on the
// core it was pinned to (or first ran on) for good; messages between actors
// of one core never leave that core's queue. When its queue is empty the
// worker reaps the core's io_uring ring (block I/O and host sockets), and it
// sleeps in the ring, so a completion, a socket or a message from another
// core wakes it. A request thus runs front end -> facilities -> ring ->
// completion on one thread (SPDK's reactor, Seastar's shard).
//
// Only caf/fwd.hpp here: this header is included by code that must not pay
// for CAF's headers.
#include <caf/fwd.hpp>

#include <cstdint>
#include <vector>

namespace sve {

class CoreIo;

struct CoreSchedulerStats {
  uint64_t local = 0;       // jobs queued by this core for this core
  uint64_t cross_core = 0;  // jobs this core handed to another core
  uint64_t external = 0;    // jobs from threads outside the reactors
  uint64_t sleeps = 0;      // times the worker slept in its ring
};

// Installs the scheduler into `cfg`: one worker per entry of `cores`
// (worker i drives cores[i]'s ring). `pin` binds worker i to CPU
// `first_cpu + i` (modulo the CPUs this process may use). `poll_us`: how
// long a worker with nothing to do keeps polling its ring and queues
// before it sleeps (0: a few dozen polls). Polling trades a core's idle
// time for the wake-up a sleeping worker costs when the next completion or
// message comes: worth it on cores the node has to itself, where a
// mirrored write's answer or a host's next request is microseconds away.
void install_reactor_scheduler(caf::actor_system_config& cfg, std::vector<CoreIo*> cores,
                               bool pin = true, unsigned first_cpu = 0, unsigned poll_us = 0);

// After the actor system started: learns its workers.
void bind_reactor_workers(caf::actor_system& sys);

// Makes a spawned, not yet started actor (spawn<caf::lazy_init>) live on
// `core`. Call before anyone sends it a message.
void pin_to_core(const caf::actor& actor, unsigned core);

// The execution unit of the reactor running on this thread, or null.
caf::execution_unit* current_reactor_unit();

std::vector<CoreSchedulerStats> reactor_scheduler_stats();

}  // namespace sve

#pragma once
// The facility stack of one core, top to bottom. This is the one place that
// decides the order: front end -> virtualization -> back end. Later
// facilities (cache, point-in-time copy, remote copy) are inserted here.
// Every actor of the stack is pinned to the core, so a request crosses it
// without leaving the core's thread.
#include <memory>

#include "actors/actor_port.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {

struct CoreStack {
  CoreIo* io = nullptr;
  caf::actor backend;
  std::unique_ptr<ActorPort> backend_port;
  caf::actor virt;
  std::unique_ptr<ActorPort> top;  // where the front end submits
};

CoreStack build_core_stack(caf::actor_system& sys, CoreIo& io);

}  // namespace sve

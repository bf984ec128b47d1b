#pragma once
// What every SVE actor says about itself to the debug shell (svectl shell):
// its name, kind and core, how many messages it has handled and when it
// last did. Each actor keeps one in its state, counts in its handlers, and
// answers an inspect message with it and its own state, through the typed
// message protocol: nothing is read from another thread's memory.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "io/service_gate.hpp"

namespace sve {

struct ActorProbe {
  std::string name;  // unique in the node, e.g. "cache/0"
  std::string kind;  // facility, I/O, RSM, heartbeat, interconnect, config
  int core = -1;     // pinned core, or -1 for a thread of its own
  uint64_t handled = 0;
  uint64_t last_ms = 0;

  void seen() {
    ++handled;
    last_ms = monotonic_ms();
  }
  // The common part of an inspect answer; `state` is the actor's own.
  std::string answer(size_t mailbox, nlohmann::json state) const {
    return nlohmann::json{{"name", name},
                          {"kind", kind},
                          {"core", core},
                          {"mailbox", mailbox},
                          {"handled", handled},
                          {"idle_ms", last_ms ? monotonic_ms() - last_ms : 0},
                          {"state", std::move(state)}}
        .dump();
  }
};

}  // namespace sve

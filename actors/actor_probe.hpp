#pragma once
// What every SVE actor says about itself to the debug shell (svectl shell):
// its name, kind and core, how many messages it has handled and when it
// last did. Each actor keeps one in its state, counts in its handlers, and
// answers an inspect message with it and its own state, through the typed
// message protocol: nothing is read from another thread's memory.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/service_gate.hpp"

namespace sve {

struct ActorProbe {
  ActorProbe() = default;
  ActorProbe(std::string name_, std::string kind_, int core_)
      : name(std::move(name_)), kind(std::move(kind_)), core(core_) {}

  std::string name;  // unique in the node, e.g. "cache/0"
  std::string kind;  // facility, I/O, RSM, heartbeat, interconnect, config
  int core = -1;     // pinned core, or -1 for a thread of its own
  uint64_t handled = 0;
  uint64_t last_ms = 0;
  // trace ACTOR N: the next N messages it handles, as text, with their time.
  uint32_t trace_left = 0;
  std::vector<std::pair<uint64_t, std::string>> traced;

  void seen() {
    ++handled;
    last_ms = monotonic_ms();
  }
  void start_trace(uint32_t n) {
    trace_left = n;
    traced.clear();
  }
  // Messages may carry binary payloads (cluster events): what is kept is
  // printable ASCII, other bytes escaped, the first 240 characters.
  void record(const std::string& message) {
    if (!trace_left) return;
    --trace_left;
    traced.emplace_back(last_ms, printable(message));
  }
  static std::string printable(const std::string& message) {
    std::string text;
    for (unsigned char c : message) {
      if (text.size() >= 240) {
        text += "...";
        break;
      }
      if (c >= 0x20 && c < 0x7f) {
        text += static_cast<char>(c);
      } else {
        static const char* hex = "0123456789abcdef";
        text += "\\x";
        text += hex[c >> 4];
        text += hex[c & 15];
      }
    }
    return text;
  }
  // The common part of an inspect answer; `state` is the actor's own.
  std::string answer(size_t mailbox, nlohmann::json state) const {
    nlohmann::json trace = nlohmann::json::array();
    for (const auto& [at, message] : traced)
      trace.push_back({{"at_ms", at}, {"message", message}});
    return nlohmann::json{{"name", name},
                          {"kind", kind},
                          {"core", core},
                          {"mailbox", mailbox},
                          {"handled", handled},
                          {"idle_ms", last_ms ? monotonic_ms() - last_ms : 0},
                          {"trace", std::move(trace)},
                          {"trace_left", trace_left},
                          {"state", std::move(state)}}
        // Never throws: an actor's own state may hold any bytes.
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
};

}  // namespace sve

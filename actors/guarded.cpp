#include "actors/guarded.hpp"

#include <spdlog/spdlog.h>

#include "actors/actor_probe.hpp"

namespace sve::guard_detail {

void log_escaped(const std::string& actor, const std::string& message, const std::string& what) {
  spdlog::error("{}: a handler threw ({}) while handling {}; a request is answered with "
                "an error and the actor goes on",
                actor, ActorProbe::printable(what), ActorProbe::printable(message));
}

}  // namespace sve::guard_detail

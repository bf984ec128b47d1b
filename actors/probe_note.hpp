#pragma once
// Counting a message in an actor's probe, and recording it as text while
// the debug shell traces the actor. CAF-side (it reads the message being
// handled); included only by actor definitions.
#include <caf/all.hpp>

#include "actors/actor_probe.hpp"

namespace sve {

template <class Self>
void note(Self* self, ActorProbe& probe) {
  probe.seen();
  if (probe.trace_left) probe.record(caf::to_string(self->current_mailbox_element()->content()));
}

}  // namespace sve

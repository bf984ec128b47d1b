#pragma once
// The states of a point-in-time copy mapping (SVC's FlashCopy states;
// docs/flashcopy.md).
#include <cstdint>

namespace sve {

enum class FcState : uint8_t {
  idle_or_copied,  // not started, or every grain copied: the target is independent
  preparing,       // the caches of source and target are emptied (written through from now)
  prepared,        // ready to start: the source has nothing dirty in cache
  starting,        // writes to the source and target pause and drain on the node
                   // that executes them, which then makes the point in time
  copying,         // started: the target is the point in time
  stopped,         // stopped before it was copied: the target is offline
  suspended,       // what was copied is not known any more: the target is offline
  stopping,        // stopped while later mappings read through its target: the grains
                   // they still need are copied to their targets first (cleaning)
};
const char* to_string(FcState state);

}  // namespace sve

#pragma once
// What the cache asks the thin layer below it before it takes a write into
// its write-back copies: is every grain the write touches already
// allocated? A write that would allocate goes through the cache to the thin
// layer instead, so that out-of-space is known before the host is answered
// and an acknowledged write never waits on a grain the pool cannot give
// (docs/thin.md). Both facilities run on the same core; this is a call, not
// a message.
#include <cstdint>

namespace sve {

class AllocationQuery {
 public:
  virtual ~AllocationQuery() = default;
  // True only if every grain of [offset, offset + length) of `vdisk` is
  // allocated now and none is being allocated or freed. False when unknown.
  virtual bool allocated(uint32_t vdisk, uint64_t offset, uint64_t length) const = 0;
};

}  // namespace sve

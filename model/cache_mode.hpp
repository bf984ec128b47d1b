#pragma once
#include <cstdint>

namespace sve {

// How a vdisk's writes are cached on the node that owns it.
//   off            not cached at all (reads and writes pass through)
//   write-through  reads are cached; a write completes once the back end has it
//   write-back     a write completes once it is in this node's and the
//                  partner's non-volatile memory; destaged later
enum class CacheMode : uint8_t { off, write_through, write_back };
const char* to_string(CacheMode mode);

}  // namespace sve

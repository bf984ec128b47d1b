#pragma once
// The node's admin API: one JSON object per line in each direction over TCP.
// Request: {"cmd": "pool.create", ...arguments}. Reply: {"ok": true,
// "result": ...} or {"ok": false, "error": "one line"}.
#include <cstdint>

namespace sve {
inline constexpr uint16_t kDefaultAdminPort = 10810;
inline constexpr uint16_t kDefaultNbdPort = 10809;
inline constexpr size_t kMaxAdminLineBytes = 1 << 20;
}  // namespace sve

#pragma once
#include <cstddef>
#include <cstdint>

namespace sve {
// CRC-32C of a byte range; guards every on-disk record against torn writes.
uint32_t crc32c(const void* data, size_t size);
// The CRC-32C of what `crc` was computed over followed by this range:
// crc32c(a + b) == crc32c_extend(crc32c(a), b); crc32c_extend(0, x) == crc32c(x).
// (iSCSI's data digest, over a segment that lies in several pieces.)
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);
}  // namespace sve

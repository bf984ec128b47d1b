#pragma once
#include <cstddef>
#include <cstdint>

namespace sve {
// CRC-32C of a byte range; guards every on-disk record against torn writes.
uint32_t crc32c(const void* data, size_t size);
}  // namespace sve

#include "util/crc.hpp"

#include <climits>

#include <isa-l/crc.h>

namespace sve {

// Castagnoli polynomial, reflected, as iSCSI and ext4 use it: ISA-L's
// crc32_iscsi, which picks the fastest code the processor runs (the cache
// checksums every block it stores in non-volatile memory, on both nodes of
// a mirrored write). It takes the register as it runs: inverted in and out.
uint32_t crc32c(const void* data, size_t size) { return crc32c_extend(0, data, size); }

uint32_t crc32c_extend(uint32_t previous, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  unsigned int crc = ~previous;
  while (size > 0) {
    size_t n = size < size_t{INT_MAX} ? size : size_t{INT_MAX};
    crc = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), crc);
    p += n;
    size -= n;
  }
  return ~crc;
}

}  // namespace sve

#include "util/crc.hpp"

#include <boost/crc.hpp>

namespace sve {

uint32_t crc32c(const void* data, size_t size) {
  // Castagnoli polynomial, reflected, as used by iSCSI and ext4.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

}  // namespace sve

#pragma once
// What the SCSI unit tests build CDBs and read answers with.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace sve::scsi::test {

// A 16-byte CDB from its first bytes, then fields set by offset.
struct Cdb {
  std::array<uint8_t, 16> b{};
  Cdb(std::initializer_list<uint8_t> bytes) { std::copy(bytes.begin(), bytes.end(), b.begin()); }
  Cdb& at(size_t i, uint8_t v) {
    b[i] = v;
    return *this;
  }
  Cdb& be(size_t i, uint64_t v, size_t width) {
    for (size_t k = 0; k < width; ++k) b[i + k] = static_cast<uint8_t>(v >> (8 * (width - 1 - k)));
    return *this;
  }
};

// A big-endian field of an answer.
inline uint64_t be(const std::vector<uint8_t>& d, size_t at, size_t width) {
  uint64_t v = 0;
  for (size_t k = 0; k < width; ++k) v = v << 8 | d[at + k];
  return v;
}

}  // namespace sve::scsi::test

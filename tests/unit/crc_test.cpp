// CRC-32C: the check value of the standard, and the same answer at every
// length and alignment (the hardware path steps 8 bytes at a time).
#include <catch2/catch.hpp>

#include <boost/crc.hpp>

#include <random>
#include <vector>

#include "util/crc.hpp"

TEST_CASE("crc32c gives the standard check value and matches a table CRC", "[crc]") {
  CHECK(sve::crc32c("123456789", 9) == 0xE3069283u);
  std::mt19937 rng(1);
  std::vector<unsigned char> data(5000);
  for (auto& c : data) c = static_cast<unsigned char>(rng());
  for (size_t start : {0, 1, 3, 7}) {
    for (size_t len : {0, 1, 7, 8, 9, 63, 4096, 4991}) {
      boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> ref;
      ref.process_bytes(data.data() + start, len);
      CHECK(sve::crc32c(data.data() + start, len) == ref.checksum());
    }
  }
}

TEST_CASE("crc32c_extend continues a CRC over a range cut anywhere", "[crc]") {
  const char* text = "123456789";
  for (size_t cut = 0; cut <= 9; ++cut)
    CHECK(sve::crc32c_extend(sve::crc32c(text, cut), text + cut, 9 - cut) == 0xE3069283u);
  CHECK(sve::crc32c_extend(0, text, 9) == 0xE3069283u);
}

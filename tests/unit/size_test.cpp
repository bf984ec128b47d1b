#include <catch2/catch.hpp>

#include "util/size.hpp"

using namespace sve;

TEST_CASE("sizes parse with power-of-1024 suffixes") {
  CHECK(parse_size("4096") == 4096u);
  CHECK(parse_size("16M") == 16 * MiB);
  CHECK(parse_size("16m") == 16 * MiB);
  CHECK(parse_size("1G") == GiB);
  CHECK(parse_size("1GiB") == GiB);
  CHECK(parse_size("2T") == 2 * TiB);
  CHECK(parse_size("512K") == 512 * KiB);
  CHECK(parse_size("100B") == 100u);
}

TEST_CASE("malformed sizes are refused") {
  CHECK_FALSE(parse_size(""));
  CHECK_FALSE(parse_size("M"));
  CHECK_FALSE(parse_size("-1G"));
  CHECK_FALSE(parse_size("1.5G"));
  CHECK_FALSE(parse_size("1X"));
  CHECK_FALSE(parse_size("1GG"));
  CHECK_FALSE(parse_size("99999999999999999999"));
  CHECK_FALSE(parse_size("20000000T"));  // overflows 64 bits
}

TEST_CASE("sizes format readably") {
  CHECK(format_size(0) == "0B");
  CHECK(format_size(16 * MiB) == "16MiB");
  CHECK(format_size(GiB + GiB / 2) == "1.50GiB");
}

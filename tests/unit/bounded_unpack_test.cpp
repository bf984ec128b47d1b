// Every msgpack input SVE reads claims no more elements than it has bytes:
// a few bytes that claim billions are refused before memory is set aside.
#include <catch2/catch.hpp>

#include <string>

#include "cluster/protocol/codec.hpp"
#include "util/bounded_unpack.hpp"

using sve::bounded_unpack;

TEST_CASE("msgpack input claiming more elements than its bytes is refused", "[msgpack]") {
  // An array32 header claiming 2^32 - 1 elements, then nothing.
  const std::string huge_array("\xdd\xff\xff\xff\xff", 5);
  CHECK_THROWS_AS(bounded_unpack(huge_array.data(), huge_array.size()),
                  msgpack::array_size_overflow);
  // A million elements in seven bytes (once 24 MiB of zeroed memory).
  const std::string million("\xdd\x00\x0f\xff\xff\x00\x00", 7);
  CHECK_THROWS_AS(bounded_unpack(million.data(), million.size()), msgpack::array_size_overflow);
  // A map32 claiming 2^32 - 1 entries.
  const std::string huge_map("\xdf\xff\xff\xff\xff\x00\x00", 7);
  CHECK_THROWS_AS(bounded_unpack(huge_map.data(), huge_map.size()), msgpack::map_size_overflow);
  // Nested deeper than asked for.
  const std::string deep(40, '\x91');
  CHECK_THROWS_AS(bounded_unpack(deep.data(), deep.size()), msgpack::depth_size_overflow);

  // The control: honest inputs at the bound decode. Sixteen one-byte
  // elements in an array16 header (19 bytes), and a map of one entry.
  std::string sixteen("\xdc\x00\x10", 3);
  sixteen.append(16, '\x01');
  auto handle = bounded_unpack(sixteen.data(), sixteen.size());
  CHECK(handle.get().via.array.size == 16);
  const std::string one_entry("\x81\x01\x02", 3);
  CHECK(bounded_unpack(one_entry.data(), one_entry.size()).get().via.map.size == 1);

  // The cluster's message decoder refuses such a frame as garbage.
  const std::string frame("\x92\x00\xdd\x00\x0f\xff\xff", 7);
  CHECK_FALSE(sve::cluster::decode_message(frame));
}

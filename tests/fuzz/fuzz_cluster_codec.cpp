// Fuzz target: a cluster protocol message off the wire decodes into a
// message or is refused; what decodes encodes again and decodes the same.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cluster/protocol/codec.hpp"

using namespace sve::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto message = decode_message(bytes);
  if (!message) return 0;
  std::string again = encode_message(*message);
  auto twice = decode_message(again);
  if (!twice || encode_message(*twice) != again) std::abort();
  return 0;
}

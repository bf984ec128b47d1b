#pragma once
// msgpack's unpacker sets aside an array's or a map's element storage as
// soon as it reads the header, so a five-byte input that claims 2^32
// elements asks for 96 GiB (and a claim of a million costs 24 MiB of
// zeroed memory before the input runs out). Every element takes at least
// one byte of input, and every map entry two, so no honest input claims
// more than that: these limits refuse the rest before anything is set
// aside. Every msgpack input SVE reads (peers' messages, RSM copies,
// labels and files on disk) goes through here; what does not decode
// throws msgpack::unpack_error (a std::runtime_error).
#include <msgpack.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace sve {

inline msgpack::object_handle bounded_unpack(const char *data, size_t size,
                                             size_t max_depth = 32) {
  const size_t n = std::min<size_t>(size, UINT32_MAX);
  msgpack::unpack_limit limit(/*array=*/n, /*map=*/n / 2, /*str=*/n, /*bin=*/n,
                              /*ext=*/n, max_depth);
  return msgpack::unpack(data, size, nullptr, nullptr, limit);
}

} // namespace sve

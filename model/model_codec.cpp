#include "model/model_codec.hpp"

#include <cerrno>

#include "util/bounded_unpack.hpp"

namespace sve {

std::vector<char> encode_config(const ClusterModel& config) {
  msgpack::sbuffer out;
  msgpack::pack(out, config);
  return std::vector<char>(out.data(), out.data() + out.size());
}

Result<ClusterModel> decode_config(const std::vector<char>& bytes) {
  try {
    auto handle = bounded_unpack(bytes.data(), bytes.size());
    return handle.get().as<ClusterModel>();
  } catch (const std::exception& e) {
    return make_error(std::string("configuration does not decode: ") + e.what(),
                      EUCLEAN);
  }
}

}  // namespace sve

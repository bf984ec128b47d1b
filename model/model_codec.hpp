#pragma once
// ClusterModel <-> msgpack bytes.
#include <vector>

#include "util/result.hpp"
#include "model/model.hpp"

namespace sve {

std::vector<char> encode_config(const ClusterModel& config);
Result<ClusterModel> decode_config(const std::vector<char>& bytes);

}  // namespace sve

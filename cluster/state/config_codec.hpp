#pragma once
// NodeConfig <-> msgpack bytes.
#include <vector>

#include "util/result.hpp"
#include "virt/model.hpp"

namespace sve {

std::vector<char> encode_config(const NodeConfig& config);
Result<NodeConfig> decode_config(const std::vector<char>& bytes);

}  // namespace sve

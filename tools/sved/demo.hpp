#pragma once
#include "node/node.hpp"
#include "util/result.hpp"

namespace sve {
// The embedded default: on a node without vdisks, two sparse 2 GiB file
// mdisks in the data dir, pool0 over them, and a 1 GiB striped vdisk vd0.
Status ensure_demo_config(Node& node, const std::string& data_dir);
}  // namespace sve

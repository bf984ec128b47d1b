#pragma once
// What the rest of the node needs to know of the cluster, pushed by the
// cluster actor whenever it changes: whether this node serves (holds a
// lease), in which generation and with which members, and where every
// configured node can be reached.
#include <cstdint>
#include <string>
#include <vector>

namespace sve {

struct ClusterView {
  bool serving = false;
  uint64_t generation = 0;
  std::vector<uint32_t> members;    // of that generation, sorted
  std::vector<uint32_t> node_ids;   // every configured node ...
  std::vector<std::string> addresses;  // ... and its cluster address
  bool operator==(const ClusterView&) const = default;
};

}  // namespace sve

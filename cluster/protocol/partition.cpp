#include "cluster/protocol/partition.hpp"

#include <algorithm>
#include <bit>

namespace sve::cluster {
namespace {

bool sees(const std::map<NodeId, View>& views, NodeId a, NodeId b) {
  auto it = views.find(a);
  if (it == views.end()) return false;
  const NodeSet& v = it->second.nodes;
  return std::binary_search(v.begin(), v.end(), b);
}

// How many of `members` are in `group`.
size_t members_in(const NodeSet& group, const NodeSet& members) {
  size_t in = 0;
  for (NodeId m : members)
    if (std::binary_search(group.begin(), group.end(), m)) ++in;
  return in;
}

}  // namespace

NodeSet choose_partition(const std::map<NodeId, View>& views, const NodeSet& nodes,
                         NodeId prefer) {
  size_t n = nodes.size();
  if (n == 0 || n > 20) return {};
  // Mutual visibility as bit masks, then every subset (clusters are small).
  std::vector<uint32_t> adj(n, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      if (i == j || (sees(views, nodes[i], nodes[j]) && sees(views, nodes[j], nodes[i])))
        adj[i] |= 1u << j;
  uint32_t prefer_bit = 0;
  for (size_t i = 0; i < n; ++i)
    if (nodes[i] == prefer) prefer_bit = 1u << i;
  uint32_t best = 0;
  int best_size = 0;
  for (uint32_t set = 1; set < (1u << n); ++set) {
    int size = std::popcount(set);
    if (size < best_size) continue;
    bool clique = true;
    for (size_t i = 0; i < n && clique; ++i)
      if ((set >> i & 1) && (adj[i] & set) != set) clique = false;
    if (!clique) continue;
    // Same size: the smaller sorted id list wins. Ids are sorted, so that is
    // the set whose lowest differing member is lower.
    bool better = size > best_size;
    if (!better && size == best_size) {
      bool mine = set & prefer_bit, best_mine = best & prefer_bit;
      if (mine != best_mine) {
        better = mine;
      } else {
        uint32_t diff = set ^ best;
        better = (set & diff & (~diff + 1)) != 0;
      }
    }
    if (better) {
      best = set;
      best_size = size;
    }
  }
  NodeSet out;
  for (size_t i = 0; i < n; ++i)
    if (best >> i & 1) out.push_back(nodes[i]);
  return out;
}

bool is_majority(const NodeSet& group, const NodeSet& members) {
  return members_in(group, members) * 2 > members.size();
}

bool is_half(const NodeSet& group, const NodeSet& members) {
  return !members.empty() && members_in(group, members) * 2 == members.size();
}

}  // namespace sve::cluster

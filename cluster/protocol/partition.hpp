#pragma once
// The partition rule, a function of the link-state database alone, so that
// nodes holding the same database reach the same answer: the largest set of
// nodes that all see each other (an edge needs both views to name the
// other), ties broken by the smallest sorted list of ids.
#include <map>

#include "cluster/protocol/types.hpp"

namespace sve::cluster {

// Among groups of the largest size, one that holds `prefer` (the asking
// node) comes first: an even split then puts each half's nodes in their own
// half, and the quorum device, not the node ids, decides which goes on.
NodeSet choose_partition(const std::map<NodeId, View>& views, const NodeSet& nodes,
                         NodeId prefer = 0);

// Whether `group` holds more than half of `members`.
bool is_majority(const NodeSet& group, const NodeSet& members);
// Whether `group` holds exactly half of `members` (an even split).
bool is_half(const NodeSet& group, const NodeSet& members);

}  // namespace sve::cluster

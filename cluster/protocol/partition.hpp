#pragma once
// The partition rule, a function of the link-state database alone, so that
// nodes holding the same database reach the same answer: the largest set of
// nodes that all see each other (an edge needs both views to name the
// other), ties broken by the smallest sorted list of ids.
#include <map>

#include "cluster/protocol/types.hpp"

namespace sve::cluster {

NodeSet choose_partition(const std::map<NodeId, View>& views, const NodeSet& nodes);

// Whether `group` holds more than half of `members`.
bool is_majority(const NodeSet& group, const NodeSet& members);

}  // namespace sve::cluster

#pragma once
// The replicated state machines of the cluster state. Each is
// deterministic: it sees only the committed event and its own state, so
// every node that applies the same log reaches the same state and the same
// answers (the call gate lets an answer out only on the node that asked).
#include <cstdint>
#include <string>
#include <vector>

#include "cluster/rsm/replicated_state.hpp"

namespace sve::cluster {

// The cluster's name and its configured nodes (state: a msgpack
// ClusterInfo). It refuses, on its own and whatever the proposing node
// checked, to remove the last node or a node without which the generation
// that ordered the removal would keep no majority.
class MembershipRsm final : public Rsm {
 public:
  std::string name() const override { return "membership"; }
  void apply(uint64_t seq, const Entry& entry, std::string& state,
             std::vector<Response>& out) override;
};

// The virtualization model (state: a msgpack ClusterModel). A change is made
// on the node where the admin asked for it (which also does what touches
// devices: labels, zeroing) and travels as the whole next model, valid only
// on top of the version it was made from; a change made concurrently
// elsewhere commits first and this one is refused as a conflict, to be
// redone.
class ConfigRsm final : public Rsm {
 public:
  std::string name() const override { return "config"; }
  void apply(uint64_t seq, const Entry& entry, std::string& state,
             std::vector<Response>& out) override;
};

// The audit log (state: a msgpack AuditLog): each entry gets the next
// number and the oldest go beyond kAuditKeep, the same on every node.
class AuditRsm final : public Rsm {
 public:
  std::string name() const override { return "audit"; }
  void apply(uint64_t seq, const Entry& entry, std::string& state,
             std::vector<Response>& out) override;
};

}  // namespace sve::cluster

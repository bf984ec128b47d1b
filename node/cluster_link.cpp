// The configuration service's way into the cluster: a change is committed
// through the cluster actor, which answers once the event committed.
#include "node/node_impl.hpp"

#include "actors/messages.hpp"
#include "cluster/state/cluster_state.hpp"

namespace sve {

// How the configuration actor commits in a cluster: through the cluster
// actor, waiting for the event to commit (the cluster actor answers every
// request within its own deadline).
ClusterLink Node::Impl::cluster_link() {
  ClusterLink link;
  link.current = [this]() -> std::optional<ClusterModel> {
    caf::scoped_actor self{*sys};
    std::optional<ClusterModel> out;
    self->request(cluster_actor, std::chrono::seconds(30), model_atom::value)
        .receive([&](std::string& bytes) { out = unpack_from_string<ClusterModel>(bytes); },
                 [&](caf::error&) {});
    return out;
  };
  link.nodes = [this]() -> std::vector<uint32_t> {
    caf::scoped_actor self{*sys};
    std::vector<uint32_t> out;
    self->request(cluster_actor, std::chrono::seconds(30), members_atom::value)
        .receive([&](std::vector<uint32_t>& ids) { out = std::move(ids); },
                 [&](caf::error&) {});
    return out;
  };
  link.commit = [this, current = link.current](uint64_t base,
                                               const ClusterModel& next) -> Result<ClusterModel> {
    caf::scoped_actor self{*sys};
    CommitOutcome outcome;
    outcome.error = "cluster actor sent no answer";
    self->request(cluster_actor, std::chrono::seconds(30), commit_atom::value, base,
                  pack_to_string(next))
        .receive([&](CommitOutcome& o) { outcome = std::move(o); },
                 [&](caf::error& e) { outcome.error = sys->render(e); });
    if (outcome.kind == CommitOutcome::Kind::conflict) return make_error("conflict", ESTALE);
    if (outcome.kind == CommitOutcome::Kind::refused) return make_error(outcome.error, EIO);
    auto committed = current();
    if (!committed) return make_error("cluster actor did not return the model", EIO);
    return *committed;
  };
  return link;
}

}  // namespace sve

// Publishing the committed model and the cluster view to the data path.
#include "node/node_impl.hpp"

#include <future>
#include <memory>

#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "model/extent_allocator.hpp"
#include "model/host_paths.hpp"
#include "model/virt_map.hpp"

namespace sve {

// Pushes the committed configuration to the data path. Runs on the config
// actor's thread (or before it exists); the data path only ever receives
// immutable snapshots and device handles by message.
void Node::Impl::publish() {
  const DeviceTable& devices = config->devices();
  auto map = build_virt_map(config->config());
  for (auto& core : cores) {
    for (const auto& [id, dev] : devices)
      caf::anon_send(core.backend, attach_atom::value, id, BlockDevicePtr(dev));
    for (uint32_t id : published_devices)
      if (!devices.count(id)) caf::anon_send(core.backend, detach_atom::value, id);
    // One message, on the core's thread, bottom up: a layer never sees a
    // view its lower layers have not. (One each raced: thin resumed writes
    // into extents of its grown real capacity while the virtualizer's view
    // waited behind completions in its mailbox, and failed them ERANGE.)
    std::vector<Facility*> stack{core.virt_facility.get(), core.thin_facility.get(),
                                 core.flashcopy.get(), core.cache.get()};
    caf::anon_send(core.virt, run_atom::value, CoreTask([stack, map] {
                     for (Facility* f : stack)
                       if (f) f->set_view(FacilityView{map, nullptr});
                   }));
  }
  published_devices.clear();
  for (const auto& [id, dev] : devices) published_devices.insert(id);
  note_pool_usage(config->config());
  {
    std::lock_guard lock(routes_mu);
    routed_config = config->config();
    publish_routes();
  }
  if (nbd) nbd->set_exports(map);
  if (iscsi) iscsi->set_exports(map);
}

// Messages to one actor arrive in order: a task sent after publish()'s to
// each core's back end and virtualizer runs once they have been applied.
void Node::Impl::await_published() {
  std::vector<std::future<void>> applied;
  for (auto& core : cores)
    for (const caf::actor* actor : {&core.backend, &core.virt}) {
      auto done = std::make_shared<std::promise<void>>();
      applied.push_back(done->get_future());
      run_on_core(*actor, [done] { done->set_value(); });
    }
  for (auto& a : applied) a.wait();
}

// A pool whose extents are 80% or more taken logs an event once (again
// after it fell below): thin vdisks grow into what is left.
void Node::Impl::note_pool_usage(const ClusterModel& model) {
  for (const auto& p : model.pools) {
    PoolUsage usage(model, p);
    uint64_t total = usage.total_extents(), used = total - usage.free_extents();
    bool over = total && used * 100 >= total * kPoolWarningPct;
    if (over && !pools_warned.count(p.id))
      spdlog::warn("event: pool {} is {}% allocated (warning at {}%){}", p.name,
                   used * 100 / total, kPoolWarningPct,
                   usage.free_extents() ? "" : ": it is full");
    if (over) pools_warned.insert(p.id);
    else pools_warned.erase(p.id);
  }
}

// Who owns each vdisk, to every core, the interconnect and the host ports.
void Node::Impl::publish_routes() {
  RoutePolicy policy;
  policy.self = options.cluster ? options.node_id : 0;
  policy.serving = !options.cluster || view.serving;
  policy.generation = view.generation;
  policy.members = view.members;
  policy.cache = cache_blocks > 0;
  if (cache_lost && policy.serving && untrusted_epoch == 0) {
    untrusted_epoch = group_epoch_of(routed_config, policy.self);
    lost_handovers = handovers_from(routed_config, policy.self);
  }
  policy.untrusted_epoch = untrusted_epoch;
  policy.lost_handovers = lost_handovers;
  this->policy = policy;
  RoutesPtr routes = build_routes(routed_config, policy);
  for (auto& core : cores) {
    for (const caf::actor& facility :
         {core.cache_actor, core.flashcopy_actor, core.thin, core.forward_actor})
      caf::anon_send(facility, view_atom::value, FacilityView{nullptr, routes});
  }
  if (interconnect) caf::anon_send(interconnect, routes_atom::value, routes);
  // Hosts are told which node to send to (ALUA): the owner.
  host_paths = build_host_paths(routed_config, policy, *routes);
  if (iscsi) iscsi->set_paths(host_paths);
}

// On the cluster actor's thread, before the gate opens on this view.
void Node::Impl::on_view(const ClusterView& next) {
  std::lock_guard lock(routes_mu);
  view = next;
  if (interconnect)
    caf::anon_send(interconnect, peers_atom::value, view.node_ids, view.addresses);
  publish_routes();
}

}  // namespace sve

// Publishing the committed model and the cluster view to the data path.
#include "node/node_impl.hpp"

#include "actors/messages.hpp"
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
    for (const caf::actor& facility : {core.virt, core.cache_actor})
      caf::anon_send(facility, view_atom::value, FacilityView{map, nullptr});
  }
  published_devices.clear();
  for (const auto& [id, dev] : devices) published_devices.insert(id);
  {
    std::lock_guard lock(routes_mu);
    routed_config = config->config();
    publish_routes();
  }
  if (nbd) nbd->set_exports(map);
}

// Who owns each vdisk, to every core and the interconnect.
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
    for (const caf::actor& facility : {core.cache_actor, core.forward_actor})
      caf::anon_send(facility, view_atom::value, FacilityView{nullptr, routes});
  }
  if (interconnect) caf::anon_send(interconnect, routes_atom::value, routes);
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

// The configuration actor: the only thread that changes configuration. It
// runs detached because committing a change fsyncs metadata, and no blocking
// call may hold up a scheduler thread that serves I/O.
#include "actors/guarded.hpp"
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "cluster/config_service.hpp"
#include "cluster/state/cluster_state.hpp"

namespace sve {
namespace {

struct ConfigState {
  std::shared_ptr<ConfigService> service;
  std::function<void()> publish;
  ActorProbe probe{"config", "config", -1};
  static inline const char* name = "config";
};

caf::behavior config_actor(caf::stateful_actor<ConfigState>* self,
                           std::shared_ptr<ConfigService> service,
                           std::function<void()> publish) {
  self->state.service = std::move(service);
  self->state.publish = std::move(publish);
  return guarded_behavior(self, &self->state.probe.name,
      [=](trace_atom, uint32_t n) { self->state.probe.start_trace(n); },
      [=](inspect_atom) {
        const ClusterModel& c = self->state.service->config();
        return self->state.probe.answer(
            self->mailbox().size(),
            {{"model_version", c.version}, {"mdisks", c.mdisks.size()},
             {"pools", c.pools.size()}, {"vdisks", c.vdisks.size()},
             {"iogrps", c.iogrps.size()}});
      },
      [=](admin_atom, const std::string& line) -> std::string {
        auto& st = self->state;
        note(self, st.probe);
        nlohmann::json request;
        try {
          request = nlohmann::json::parse(line);
        } catch (const std::exception&) {
          return nlohmann::json{{"ok", false}, {"error", "request is not JSON"}}.dump();
        }
        uint64_t before = st.service->version();
        nlohmann::json reply = st.service->handle(request);
        if (st.service->version() != before) st.publish();
        return reply.dump();
      },
      // Work that must run where configuration changes (the thin
      // controller's growth of a vdisk): on this thread.
      [=](run_atom, CoreTask& task) { task(); },
      // A model the cluster committed (this node's change or another's).
      [=](model_atom, const std::string& bytes) {
        auto& st = self->state;
        auto model = unpack_from_string<ClusterModel>(bytes);
        if (model && st.service->adopt(*model)) st.publish();
      }
  );
}

}  // namespace

caf::actor spawn_config_actor(caf::actor_system& sys, std::shared_ptr<ConfigService> service,
                              std::function<void()> publish) {
  return sys.spawn<caf::detached>(config_actor, std::move(service), std::move(publish));
}

}  // namespace sve

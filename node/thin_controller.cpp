// The thin controller: gives thin vdisks real capacity as they fill.
#include "node/node_impl.hpp"

#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/spawn.hpp"

namespace sve {

namespace {

struct ThinControllerState {
  static inline const char* name = "thin-controller";
};
using ThinControllerSelf = caf::stateful_actor<ThinControllerState>;

const std::string kThinControllerName = "thin controller";

}  // namespace

// Each tick asks every core's thin facility which vdisks want to grow
// (ThinFacility::growth_requests: each is asked once until it grew or was
// refused), and has the configuration thread commit each growth; a pool
// that cannot give even what is needed is reported back to the core, whose
// requests that need grains then fail with ENOSPC until the model changes.
// Nothing here waits: the cores and the configuration thread answer by
// running tasks.
caf::actor Node::Impl::spawn_thin_controller() {
  auto period = std::chrono::milliseconds(50);
  return sys->spawn([this, period](ThinControllerSelf* self) -> caf::behavior {
    self->send(self, tick_atom::value);
    return guarded_behavior(self, &kThinControllerName,
        [=, this](tick_atom) {
          self->delayed_send(self, period, tick_atom::value);
          for (CoreStack& core : cores) {
            ThinFacility* thin = core.thin_facility.get();
            caf::actor on = core.thin;
            run_on_core(on, [this, thin, on] {
              std::vector<GrowthRequest> wants = thin->growth_requests();
              if (wants.empty()) return;
              run_on_core(config_actor, [this, thin, on, wants] { grow_thin(thin, on, wants); });
            });
          }
        },
        [=](run_atom, CoreTask& task) { task(); });
  });
}

// On the configuration thread.
void Node::Impl::grow_thin(ThinFacility* thin, const caf::actor& on,
                           const std::vector<GrowthRequest>& wants) {
  bool changed = false;
  for (const GrowthRequest& want : wants) {
    const VdiskConfig* v = nullptr;
    for (const auto& candidate : config->config().vdisks)
      if (candidate.id == want.vdisk) v = &candidate;
    if (!v) continue;  // deleted meanwhile: the core drops it with the view
    std::string name = v->name;
    auto grown = config->grow_thin_vdisk(name, want.vdisk, want.needed, want.wanted);
    uint32_t id = want.vdisk;
    if (grown) {
      changed = true;
      continue;
    }
    bool no_space = grown.error().code == ENOSPC;
    if (no_space)
      spdlog::warn("event: thin vdisk {} cannot grow: {}; writes that need new grains fail "
                   "with ENOSPC until capacity is added",
                   name, grown.error().message);
    else
      spdlog::warn("thin vdisk {}: growth not committed ({}); trying again", name,
                   grown.error().message);
    run_on_core(on, [thin, id, no_space] { thin->growth_refused(id, no_space); });
  }
  if (changed) publish();
}

}  // namespace sve

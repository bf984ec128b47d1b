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

// Each tick asks every core's thin facility which vdisks want to grow
// (ThinFacility::growth_requests: each is asked once until it grew or was
// refused), and has the configuration thread commit each growth; a pool
// that cannot give even what is needed is reported back to the core, whose
// requests that need grains then fail with ENOSPC until the model changes.
// Nothing here waits: the cores and the configuration thread answer by
// running tasks. Spawned with arguments: CAF 0.17 dereferences an empty
// argument tuple for a function spawned without any (UBSan reports it).
// What it works with: each core's thin facility (with the actor that runs
// on its core), the configuration actor, and the growth itself (run there).
struct ThinControllerSetup {
  std::vector<std::pair<caf::actor, ThinFacility*>> cores;
  caf::actor config_actor;
  std::function<void(ThinFacility*, const caf::actor&, const std::vector<GrowthRequest>&)> grow;
};
using ThinSetupPtr = std::shared_ptr<const ThinControllerSetup>;

caf::behavior thin_controller_behavior(ThinControllerSelf* self, ThinSetupPtr m,
                                       std::chrono::milliseconds period) {
  self->send(self, tick_atom::value);
  return guarded_behavior(self, &kThinControllerName,
      [=](tick_atom) {
        self->delayed_send(self, period, tick_atom::value);
        for (const auto& [on, thin] : m->cores) {
          run_on_core(on, [m, on = on, thin = thin] {
            std::vector<GrowthRequest> wants = thin->growth_requests();
            if (wants.empty()) return;
            run_on_core(m->config_actor, [m, thin, on, wants] { m->grow(thin, on, wants); });
          });
        }
      },
      [=](run_atom, CoreTask& task) { task(); });
}

}  // namespace

caf::actor Node::Impl::spawn_thin_controller() {
  auto setup = std::make_shared<ThinControllerSetup>();
  for (CoreStack& core : cores) setup->cores.emplace_back(core.thin, core.thin_facility.get());
  setup->config_actor = config_actor;
  setup->grow = [this](ThinFacility* thin, const caf::actor& on,
                       const std::vector<GrowthRequest>& wants) { grow_thin(thin, on, wants); };
  return sys->spawn(thin_controller_behavior, ThinSetupPtr(std::move(setup)),
                    std::chrono::milliseconds(50));
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

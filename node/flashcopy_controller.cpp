// The copy controller: commits the steps of point-in-time copies
// (docs/flashcopy.md) that the cores of the node executing a mapping's
// source report: its caches are clean (prepared), its writes are paused and
// drained (the point in time), every grain is copied, or what was copied is
// not known any more (suspended). And `fcmap show` / `fcmap list` with the
// progress the source's core knows.
#include "node/node_impl.hpp"

#include <spdlog/spdlog.h>

#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/spawn.hpp"

namespace sve {

namespace {

struct CopyControllerState {
  static inline const char* name = "copy-controller";
};
using CopyControllerSelf = caf::stateful_actor<CopyControllerState>;

const std::string kCopyControllerName = "copy controller";

// Each core's copy facility and cache, the configuration actor, and what
// to run there with a core's events. (Spawned with arguments: see
// thin_controller.cpp.)
struct CopyControllerSetup {
  std::vector<std::tuple<caf::actor, FlashCopyFacility*, CacheFacility*>> cores;
  caf::actor config_actor;
  std::function<void(unsigned, const std::vector<CopyEvent>&)> handle;
};
using CopySetupPtr = std::shared_ptr<const CopyControllerSetup>;

// Every tick asks each core (on its own thread: the cache and the copy
// facility of a core run there) what is due, and hands it to the
// configuration thread. Nothing here waits.
caf::behavior copy_controller_behavior(CopyControllerSelf* self, CopySetupPtr m,
                                       std::chrono::milliseconds period) {
  self->send(self, tick_atom::value);
  return guarded_behavior(self, &kCopyControllerName,
      [=](tick_atom) {
        self->delayed_send(self, period, tick_atom::value);
        for (unsigned i = 0; i < m->cores.size(); ++i) {
          auto [on, copy, cache] = m->cores[i];
          run_on_core(on, [m, i, copy = copy, cache = cache] {
            auto events = copy->events([cache](uint32_t v) {
              return cache->dirty_blocks(v) > 0 || cache->mode(v) == CacheMode::write_back;
            });
            if (events.empty()) return;
            run_on_core(m->config_actor, [m, i, events] { m->handle(i, events); });
          });
        }
      },
      [=](run_atom, CoreTask& task) { task(); });
}

}  // namespace

caf::actor Node::Impl::spawn_copy_controller() {
  auto setup = std::make_shared<CopyControllerSetup>();
  for (CoreStack& core : cores)
    setup->cores.emplace_back(core.cache_actor, core.flashcopy.get(), core.cache.get());
  setup->config_actor = config_actor;
  setup->handle = [this](unsigned core, const std::vector<CopyEvent>& events) {
    copy_events(core, events);
  };
  return sys->spawn(copy_controller_behavior, CopySetupPtr(std::move(setup)),
                    std::chrono::milliseconds(50));
}

// On the configuration thread. Clean and drained need every core: any
// may have passed a write to the mapping's vdisks down (the vdisk's own,
// the home core of mappings they shared a vdisk with, the core a request
// arrived on).
void Node::Impl::copy_events(unsigned core, const std::vector<CopyEvent>& events) {
  using Kind = CopyEvent::Kind;
  using Step = ConfigService::FcStep;
  uint32_t self = options.cluster ? options.node_id : 0;
  bool changed = false;
  for (const CopyEvent& e : events) {
    const FcMapConfig* f = nullptr;
    for (const auto& candidate : config->config().fcmaps)
      if (candidate.id == e.mapping) f = &candidate;
    if (!f || f->start_seq != e.start_seq) continue;
    Result<bool> done = false;
    if (e.kind == Kind::clean || e.kind == Kind::drained) {
      FcState due = e.kind == Kind::clean ? FcState::preparing : FcState::starting;
      if (f->state != due) continue;
      if (e.kind == Kind::drained && f->drained) continue;  // its group waits for the others
      auto key = std::make_tuple(e.mapping, int(e.kind), e.start_seq);
      std::set<unsigned>& seen = copy_reports[key];
      seen.insert(core);
      if (seen.size() < cores.size()) continue;
      copy_reports.erase(key);
      done = config->fcmap_step(e.kind == Kind::clean ? Step::prepared : Step::started,
                                e.mapping, e.start_seq, self, {});
    } else if (e.kind == Kind::cleaned) {
      if (f->state != FcState::stopping) continue;
      done = config->fcmap_step(Step::cleaned, e.mapping, e.start_seq, self, {});
    } else if (f->executing()) {
      done = config->fcmap_step(e.kind == Kind::copied ? Step::copied : Step::lost, e.mapping,
                                e.start_seq, self, e.why);
    }
    if (!done)
      spdlog::warn("fcmap {}: step not committed ({}); trying again", f->name,
                   done.error().message);
    else if (done.value())
      changed = true;
  }
  // Reports of mappings that moved on (or are gone) are forgotten.
  std::erase_if(copy_reports, [&](const auto& entry) {
    for (const auto& f : config->config().fcmaps)
      if (f.id == std::get<0>(entry.first) && f.start_seq == std::get<2>(entry.first)) return false;
    return true;
  });
  if (changed) publish();
}

// fcmap.show / fcmap.list, with the progress the source's core knows (on
// the node that executes the source; elsewhere none).
std::string Node::Impl::show_fcmaps(const std::string& line, bool list) {
  std::string reply = call_config(line);
  auto answer = nlohmann::json::parse(reply, nullptr, false);
  if (answer.is_discarded() || !answer.value("ok", false)) return reply;
  auto add_progress = [&](nlohmann::json& f) {
    uint32_t id = f.value("id", uint32_t{0});
    for (size_t i = 0; i < cores.size(); ++i) {
      FlashCopyFacility* copy = cores[i].flashcopy.get();
      auto figures = ask_core<std::optional<CopyFigures>>(
          i, cores[i].cache_actor, [copy, id] { return copy->figures(id); });
      if (!figures) continue;
      uint64_t grains = figures->grains ? figures->grains : 1;
      f["progress"] = {{"known", figures->known},
                       {"grains", figures->grains},
                       {"copied_grains", figures->copied},
                       {"percent", figures->copied * 100 / grains}};
      if (!figures->known) f["progress"]["why"] = figures->why;
      return;
    }
    if (f.value("state", "") == "idle_or_copied") f["progress"] = {{"percent", 100}};
  };
  auto& result = answer["result"];
  if (list) {
    for (auto& f : result) add_progress(f);
  } else {
    add_progress(result);
  }
  return answer.dump();
}

}  // namespace sve

// A thin vdisk's upkeep: usage and its warning, growth, checks, dropping
// the map, and what the facility shows.
#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "thin/thin_steps.hpp"

namespace sve {

// ---- growth, usage, checks ----------------------------------------------------

void ThinFacility::note_usage(Vol& v) {
  if (!v.map || v.state != Vol::State::ready) return;
  uint64_t used = v.map->mapped_grains() * v.grain;
  bool over = v.warning_pct && used * 100 >= v.virtual_bytes * v.warning_pct;
  if (over && !v.warned)
    spdlog::warn("event: thin vdisk {} has used {}% of its virtual size (warning at {}%)", v.name,
                 used * 100 / v.virtual_bytes, v.warning_pct);
  v.warned = over;
  // Grow ahead of need: when what is free falls under half the contingency
  // (SVC keeps the real capacity about that far ahead of what is used).
  if (v.autoexpand && !v.refused && v.extent_bytes) {
    if (uint64_t{v.map->free_grains()} * v.grain < v.growth_step() / 2) v.want_growth = true;
  }
}

std::vector<GrowthRequest> ThinFacility::growth_requests() {
  std::vector<GrowthRequest> out;
  for (auto& [id, vp] : vols_) {
    Vol& v = *vp;
    if (!v.want_growth || v.growth_asked || v.refused || !v.autoexpand || !v.extent_bytes ||
        v.state != Vol::State::ready)
      continue;
    v.growth_asked = true;
    uint64_t short_by = v.grains_needed > v.map->free_grains()
                            ? uint64_t{v.grains_needed - v.map->free_grains()} * v.grain
                            : 0;
    uint64_t step = v.growth_step();
    GrowthRequest g;
    g.vdisk = id;
    g.needed = static_cast<uint32_t>(std::max<uint64_t>(
        1, (short_by + v.extent_bytes - 1) / v.extent_bytes));
    g.wanted = static_cast<uint32_t>(
        std::max<uint64_t>(g.needed, (short_by + step + v.extent_bytes - 1) / v.extent_bytes));
    out.push_back(g);
  }
  return out;
}

void ThinFacility::growth_refused(uint32_t vdisk, bool no_space) {
  auto it = vols_.find(vdisk);
  if (it == vols_.end()) return;
  Vol& v = *it->second;
  if (!no_space) {
    v.growth_asked = false;  // asked again on the controller's next tick
    return;
  }
  v.refused = true;
  v.growth_asked = false;
  v.want_growth = false;
  v.grains_needed = 0;
  std::deque<IoRequestPtr> waiters;
  waiters.swap(v.space_waiters);
  // They run again: those that fit in what is free now go on, the others
  // fail with ENOSPC.
  for (auto& r : waiters) run(v, std::move(r));
}

bool ThinFacility::allocated(uint32_t vdisk, uint64_t offset, uint64_t length) const {
  auto it = vols_.find(vdisk);
  if (it == vols_.end() || length == 0) return false;
  const Vol& v = *it->second;
  if (v.state != Vol::State::ready || v.reload || v.drop_pending) return false;
  uint64_t end = offset + length;
  if (end < offset || end > v.virtual_bytes) return false;
  for (uint64_t g = offset / v.grain; g <= (end - 1) / v.grain; ++g)
    if (!v.map->lookup(g) || v.changing.count(g)) return false;
  return true;
}

std::optional<ThinFigures> ThinFacility::figures(uint32_t vdisk) const {
  auto it = vols_.find(vdisk);
  if (it == vols_.end()) return std::nullopt;
  const Vol& v = *it->second;
  ThinFigures f;
  f.loaded = v.state == Vol::State::ready;
  f.real_bytes = v.real_bytes;
  f.meta_bytes = v.geo.meta_bytes();
  if (v.map) {
    f.used_bytes = v.map->mapped_grains() * v.grain;
    f.free_bytes = uint64_t{v.map->free_grains()} * v.grain;
  }
  f.warning = v.warned;
  f.growing = v.growth_asked;
  f.out_of_space = v.refused;
  f.checks = v.checks;
  f.last_check = v.last_check;
  return f;
}

int ThinFacility::start_check(uint32_t vdisk) {
  const VolumeLayout* layout = map_ ? map_->find(vdisk) : nullptr;
  if (!layout || !layout->thin() || (cores_ > 1 && vdisk % cores_ != core_)) return ENOENT;
  if (!local(vdisk)) return ESTALE;
  Vol& v = vol(*layout);
  if (v.state == Vol::State::ready) {
    v.reload = true;
    idle_check(v);
  }
  return 0;  // a load in progress ends with its own check
}

void ThinFacility::idle_check(Vol& v) {
  if (v.inflight || !v.commits.empty()) return;
  if (v.drop_pending) {
    uint32_t id = v.id;
    int status = v.drop_status;
    std::deque<IoRequestPtr> parked = std::move(v.parked);
    for (auto& r : v.space_waiters) parked.push_back(std::move(r));
    // Out of the table, but alive until the next view: callers up the
    // stack may still hold it.
    auto it = vols_.find(id);
    dropped_.push_back(std::move(it->second));
    vols_.erase(it);
    for (auto& r : parked) {
      if (status == ESTALE && local(r->volume)) submit(std::move(r));
      else complete(std::move(r), status);
    }
    return;
  }
  if (v.reload && v.state == Vol::State::ready) {
    // Nothing is in flight: every grain in use is named by the map, and
    // what memory holds is what the pages on disk hold. Read them again
    // and compare (loaded() does).
    v.reload = false;
    v.mem_check = v.map->check({});
    v.before = std::move(v.map);
    start_load(v);
  }
}

void ThinFacility::drop(Vol& v, int status) {
  v.drop_pending = true;
  v.drop_status = status;
  idle_check(v);
}

nlohmann::json ThinFacility::inspect() const {
  nlohmann::json vols = nlohmann::json::object();
  for (const auto& [id, vp] : vols_) {
    auto f = figures(id);
    vols[std::to_string(id)] = {{"loaded", f->loaded},          {"used_bytes", f->used_bytes},
                                {"real_bytes", f->real_bytes},  {"free_bytes", f->free_bytes},
                                {"parked", vp->parked.size()},  {"waiting_for_space", vp->space_waiters.size()},
                                {"in_flight", vp->inflight},    {"out_of_space", f->out_of_space}};
  }
  return {{"requests", stats_.requests},       {"zero_reads", stats_.zero_reads},
          {"allocations", stats_.allocations}, {"frees", stats_.frees},
          {"meta_writes", stats_.meta_writes}, {"meta_reads", stats_.meta_reads},
          {"flushes", stats_.flushes},
          {"no_space", stats_.no_space},       {"waited_for_space", stats_.waited_for_space},
          {"vdisks", vols}};
}

}  // namespace sve

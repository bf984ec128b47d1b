#include "flashcopy/flashcopy_facility.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>

#include "flashcopy/flashcopy_map.hpp"
#include "model/ownership.hpp"

namespace sve {

FlashCopyFacility::FlashCopyFacility(IoServer& lower, unsigned core, unsigned cores)
    : lower_(lower), core_(core), cores_(cores ? cores : 1) {}

FlashCopyFacility::~FlashCopyFacility() = default;

void FlashCopyFacility::set_peers(std::vector<IoServer*> copy_of_core,
                                  std::vector<IoServer*> lower_of_core,
                                  std::vector<IoClient*> return_ports) {
  copy_of_core_ = std::move(copy_of_core);
  lower_of_core_ = std::move(lower_of_core);
  return_ports_ = std::move(return_ports);
  return_port_ = core_ < return_ports_.size() ? return_ports_[core_] : nullptr;
  // (Only the other cores' ports count as having sent a request here.)
  if (return_port_) std::erase(return_ports_, return_port_);
}

bool FlashCopyFacility::local(uint32_t vdisk) const {
  if (!routes_) return true;
  if (!routes_->serving) return false;
  return routes_->find(vdisk) && routes_->local(vdisk);
}

IoServer& FlashCopyFacility::lower_for(uint32_t vdisk) {
  unsigned c = core_of(vdisk);
  if (c == core_ || c >= lower_of_core_.size() || !lower_of_core_[c]) return lower_;
  return *lower_of_core_[c];
}

IoClient* FlashCopyFacility::client_for(uint32_t vdisk) {
  return &lower_for(vdisk) == &lower_ ? static_cast<IoClient*>(this) : return_port_;
}

bool FlashCopyFacility::writes(const IoRequest& r) const {
  return r.op == IoOp::write || r.op == IoOp::trim || r.op == IoOp::write_zeroes;
}

// ---- the view -----------------------------------------------------------------

void FlashCopyFacility::set_view(const FacilityView& view) {
  if (view.map) map_ = view.map;
  if (view.routes) routes_ = view.routes;
  any_ = false;
  mapped_.clear();
  source_of_.clear();
  maps_of_source_.clear();
  incremental_of_.clear();
  home_core_.clear();
  std::unordered_set<uint32_t> paused_vdisks, copying_here, history_here;
  std::vector<uint32_t> to_load;
  bool serving = !routes_ || routes_->serving;
  // Vdisks another mapping writes below this facility's notice (its target,
  // while it is not idle: a restore's copies into its source, say).
  std::unordered_set<uint32_t> written_below;
  if (map_)
    for (const auto& [id, c] : map_->copies) {
      if (c.state != FcState::idle_or_copied) written_below.insert(c.target);
      if (c.state == FcState::copying || c.state == FcState::stopping)
        home_core_[c.source] = home_core_[c.target] = core_of(c.home_vdisk());
    }
  // A history is kept where its vdisks' writes are run: not if an executing
  // mapping of one of them runs them on another core.
  auto runs_here = [&](uint32_t v) {
    auto h = home_core_.find(v);
    return h == home_core_.end() || h->second == core_;
  };
  if (map_) {
    for (const auto& [id, c] : map_->copies) {
      // Writes to a mapped vdisk are counted from the mapping's creation
      // on, so that a start (several commits later) finds every write that
      // is below.
      any_ = true;
      mapped_.insert(c.source);
      mapped_.insert(c.target);
      bool ours = serving && local(c.source);
      unsigned home = core_of(c.home_vdisk());
      // An incremental mapping's history stays only where its source is
      // executed all along; its writes outside copying are noted there.
      if (c.incremental && ours && home == core_ && !written_below.count(c.source) &&
          runs_here(c.source) && runs_here(c.target) && !c.history_lost)
        history_here.insert(id);
      if (c.incremental && c.start_seq > 0 && c.state != FcState::copying) {
        incremental_of_[c.source].push_back(id);
        incremental_of_[c.target].push_back(id);
      }
      if (c.state == FcState::idle_or_copied) continue;
      source_of_[c.target] = id;
      if (c.state == FcState::starting && ours) {
        // This facility holds the start's writes from now until the point
        // in time is committed: it may keep the bitmap of this start.
        paused_vdisks.insert(c.source);
        paused_vdisks.insert(c.target);
        paused_for_[id] = c.start_seq;
      } else if (c.state == FcState::starting) {
        paused_vdisks.insert(c.source);
        paused_vdisks.insert(c.target);
      }
      if (!ours) paused_for_.erase(id);  // another node may execute it meanwhile
      bool executing = c.state == FcState::copying || c.state == FcState::stopping;
      if (c.state != FcState::starting && !executing) paused_for_.erase(id);
      if (!executing || home != core_ || !ours) continue;
      copying_here.insert(id);
      auto it = maps_.find(id);
      if (it != maps_.end() && it->second->layout.start_seq == c.start_seq) {
        it->second->layout = c;  // (its rates, stopping)
      } else {
        if (it != maps_.end()) drop_map(id);  // (its history kept for this start)
        auto m = std::make_unique<Map>();
        m->layout = c;
        m->incarnation = next_incarnation_++;
        m->grains = c.grain_bytes ? (c.size_bytes + c.grain_bytes - 1) / c.grain_bytes : 0;
        m->bits.assign((m->grains + 63) / 64, 0);
        if (c.incremental) m->changed.assign(m->bits.size(), 0);
        auto p = paused_for_.find(id);
        m->known = p != paused_for_.end() && p->second == c.start_seq;
        m->twice = read_back_.count(id) > 0;  // (a late write of an earlier start's page)
        if (c.bitmap) {
          m->pages.resize(fc_bitmap_pages(m->grains));
          m->durable.assign(m->bits.size(), 0);
          if (c.incremental && c.changes_on_bitmap) {
            m->changed_pages.resize(m->pages.size());
            m->changed_durable.assign(m->bits.size(), 0);
          }
          if (!m->known) to_load.push_back(id);  // a takeover or a restart: read it back
        } else if (!m->known) {
          m->why = "which grains were copied was kept in the memory of the node that executed "
                   "the source when it started (node " + std::to_string(c.started_by) +
                   "); this I/O process did not start it, and the mapping keeps no bitmap "
                   "on the back end";
        }
        m->seen_all = m->known;  // (or once its bitmap is read back with the writes)
        if (m->known) apply_history(*m);
        drop_history(id);  // (applied: the start makes the next one)
        maps_[id] = std::move(m);
      }
    }
  }
  std::vector<uint32_t> gone;
  for (const auto& [id, m] : maps_)
    if (!copying_here.count(id)) gone.push_back(id);
  for (uint32_t id : gone) drop_map(id);
  std::vector<uint32_t> forgotten;
  for (const auto& [id, h] : histories_)
    if (!history_here.count(id)) forgotten.push_back(id);
  for (uint32_t id : forgotten) drop_history(id);
  // A history kept here and not held (a restart, a takeover, a new home):
  // read back from the back end, between starts only (a start applies what
  // is held when it is committed).
  for (uint32_t id : history_here) {
    const CopyLayout& c = map_->copies.at(id);
    bool between = c.state == FcState::idle_or_copied || c.state == FcState::stopped ||
                   c.state == FcState::suspended || c.state == FcState::preparing ||
                   c.state == FcState::prepared;
    if (!histories_.count(id) && between && c.bitmap && c.start_seq > 0) load_history(c);
  }
  for (uint32_t id : copying_here) maps_of_source_[maps_[id]->layout.source].push_back(id);
  std::erase_if(paused_for_, [&](const auto& entry) {
    return !map_ || !map_->copies.count(entry.first);  // deleted
  });
  std::erase_if(read_back_, [&](uint32_t id) { return !map_ || !map_->copies.count(id); });
  paused_vdisks_.swap(paused_vdisks);
  for (uint32_t id : to_load) load_bitmap(*maps_[id]);  // (once the view is whole)
  resume_paused();
}

void FlashCopyFacility::drop_map(uint32_t id) {
  auto it = maps_.find(id);
  if (it == maps_.end()) return;
  std::unique_ptr<Map> m = std::move(it->second);
  maps_.erase(it);
  keep_history(*m);
  if (m->loading && --loading_ == 0) {
    for (auto& r : load_waiting_) paused_.push_back(std::move(r));
    load_waiting_.clear();
  }
  // Requests waiting on its grains go where the new state says; its steps
  // still below find it gone (by incarnation) and stop there.
  for (auto& [g, waiting] : m->changing)
    for (auto& r : waiting) paused_.push_back(std::move(r));
  for (auto* pages : {&m->pages, &m->changed_pages})
    for (auto& page : *pages)
      for (auto& r : page.waiting) paused_.push_back(std::move(r));
}

void FlashCopyFacility::resume_paused() {
  std::deque<IoRequestPtr> again;
  again.swap(paused_);
  for (auto& r : again) resume(std::move(r));
}

void FlashCopyFacility::resume(IoRequestPtr request) {
  if (copy_writes_.count(request.get()))
    copy_write(std::move(request));
  else
    route(std::move(request));
}

FlashCopyFacility::Map* FlashCopyFacility::map_here(uint32_t id) {
  auto it = maps_.find(id);
  return it == maps_.end() ? nullptr : it->second.get();
}

FlashCopyFacility::Map* FlashCopyFacility::target_map(uint32_t vdisk) {
  auto t = source_of_.find(vdisk);
  return t == source_of_.end() ? nullptr : map_here(t->second);
}

FlashCopyFacility::Map* FlashCopyFacility::find_map(uint32_t id, uint64_t incarnation) {
  auto it = maps_.find(id);
  if (it == maps_.end() || it->second->incarnation != incarnation) return nullptr;
  return it->second.get();
}

// ---- requests -----------------------------------------------------------------

void FlashCopyFacility::submit(IoRequestPtr request) {
  if (!any_ || !mapped_.count(request->volume)) {  // no mapping: one test (or two)
    lower_.submit(std::move(request));
    return;
  }
  ++stats_.requests;
  route(std::move(request));
}

void FlashCopyFacility::route(IoRequestPtr request) {
  uint32_t v = request->volume;
  // Another core's copy facility sent it here (to the vdisk's own core, or
  // on from there to the home core of its mappings, or to the core keeping
  // an incremental history): it is not sent back to its own core, whatever
  // this core's view says now (views reach the cores one by one: it could
  // go back and forth for as long). A request crosses cores twice at most
  // (three times if its vdisk's mapping starts while it waits on a
  // history's core): the home core of an executing mapping never sends one
  // on, nor does a history's core.
  bool sent_here = request->cookie == kFcHome &&
                   std::find(return_ports_.begin(), return_ports_.end(), request->client) !=
                       return_ports_.end();
  auto send_to = [&](unsigned c) {
    if (c == core_ || c >= copy_of_core_.size() || !copy_of_core_[c]) return false;
    request->intercept(return_port_, kFcHome);
    copy_of_core_[c]->submit(std::move(request));
    return true;
  };
  // A mapped vdisk's requests are counted, held and copied for on its own
  // core; one that arrives elsewhere (a connection placed before the vdisk
  // was mapped, on a node without a cache) goes there first.
  unsigned own = core_of(v);
  if (!sent_here && send_to(own)) return;
  const CopyLayout* as_target = nullptr;
  bool starting_target = false;
  if (auto t = source_of_.find(v); t != source_of_.end() && map_) {
    const CopyLayout& c = map_->copies.at(t->second);
    // Offline to hosts, as SVC's: once stopped or suspended, and already
    // while stopping (its grains go to the mappings that read through it;
    // it will not be a point in time any more).
    if (c.state == FcState::stopped || c.state == FcState::suspended ||
        c.state == FcState::stopping) {
      if (request->op == IoOp::flush) return lower_.submit(std::move(request));
      return complete(std::move(request), EIO);  // the target is offline
    }
    if (c.state == FcState::copying) {
      if (request->op == IoOp::flush) return lower_.submit(std::move(request));
      if (request->op == IoOp::block_status) {
        // Its holes are not where its thin layer says: all data.
        put_all_data(*request);
        return complete(std::move(request), 0);
      }
      as_target = &c;
    }
    // A target's reads wait too while its mapping starts: the node commits
    // `copying` only once every core has paused (drained), so a read that
    // waits here is served by the view that has its point in time, never
    // by the target's blocks from before.
    starting_target = c.state == FcState::starting && request->op != IoOp::flush;
  }
  // A vdisk of an executing mapping: the home core of its mappings (one
  // for all that share a vdisk, CopyLayout::home) runs every request of it,
  // wherever it is now (a write that waited on a history's core while the
  // mapping started goes there too: the home core never sends one on).
  auto home = home_core_.find(v);
  if (home != home_core_.end() && send_to(home->second)) return;
  bool here = home != home_core_.end() && home->second == core_;
  if ((writes(*request) || starting_target) && paused_vdisks_.count(v)) {
    ++stats_.paused;  // a mapping is starting: until its point in time
    paused_.push_back(std::move(request));
    return;
  }
  if (writes(*request)) {
    if (auto inc = incremental_of_.find(v); inc != incremental_of_.end() && map_) {
      // Noted by the core that keeps the history: its home's (that of the
      // vdisk's executing mappings, if any: set_view keeps no history
      // elsewhere then).
      if (home == home_core_.end() && core_ == own)
        for (uint32_t id : inc->second)
          if (send_to(core_of(map_->copies.at(id).home_vdisk()))) return;
      for (uint32_t id : inc->second)
        if (note_change(id, request)) return;
    }
    if (here) return run_write(std::move(request));
  } else if (as_target) {
    Map* m = here ? map_here(as_target->id) : nullptr;
    if (!m) return complete(std::move(request), EIO);
    return read_target(*m, std::move(request));
  }
  if (as_target) return complete(std::move(request), EIO);  // (executed elsewhere)
  pass(std::move(request));
}

void FlashCopyFacility::pass(IoRequestPtr request) {
  bool w = writes(*request);
  uint32_t v = request->volume;
  IoServer& below = lower_for(v);
  if (!w && &below == &lower_) return lower_.submit(std::move(request));
  if (w) ++writes_below_[v];
  request->intercept(client_for(v), w ? kFcPassedWrite : kFcPassedRead);
  below.submit(std::move(request));
}

void FlashCopyFacility::io_done(IoRequestPtr child) {
  uint64_t tag = child->cookie & kFcTagMask;
  if (tag == kFcPassedWrite || tag == kFcPassedRead || tag == kFcHome) {
    child->restore();
    if (tag == kFcPassedWrite) {
      auto it = writes_below_.find(child->volume);
      if (it != writes_below_.end() && --it->second == 0) writes_below_.erase(it);
    }
    int status = child->status;
    complete(std::move(child), status);
    return;
  }
  auto* step = reinterpret_cast<Step*>(child->cookie);
  step->done(*this, *child);
}

// ---- what the node commits ---------------------------------------------------------

std::vector<CopyEvent> FlashCopyFacility::events(
    const std::function<bool(uint32_t)>& dirty) const {
  std::vector<CopyEvent> out;
  if (!map_ || (routes_ && !routes_->serving)) return out;
  auto count = [](const std::unordered_map<uint32_t, uint32_t>& counts, uint32_t v) {
    auto it = counts.find(v);
    return it == counts.end() ? 0u : it->second;
  };
  auto below = [&](uint32_t v) { return count(writes_below_, v); };
  auto copies_below = [&](uint32_t v) { return count(copy_writes_below_, v); };
  for (const auto& [id, c] : map_->copies) {
    unsigned home = core_of(c.home_vdisk());
    // Every core reports clean and drained: any core may have passed a
    // write to them down (the home core of mappings they were in before,
    // a core a request arrived on), and the node waits for all.
    if (!local(c.source) || !local(c.target)) continue;
    if (c.state == FcState::preparing) {
      bool clean = true;
      for (uint32_t v : {c.source, c.target})
        if (core_of(v) == core_ && dirty(v)) clean = false;
      if (clean) out.push_back({CopyEvent::Kind::clean, id, c.start_seq, {}});
    } else if (c.state == FcState::starting) {
      auto p = paused_for_.find(id);
      if (p != paused_for_.end() && p->second == c.start_seq && below(c.source) == 0 &&
          below(c.target) == 0 && copies_below(c.target) == 0)
        out.push_back({CopyEvent::Kind::drained, id, c.start_seq, {}});
    } else if ((c.state == FcState::copying || c.state == FcState::stopping) && home == core_) {
      auto it = maps_.find(id);
      if (it == maps_.end()) continue;
      const Map& m = *it->second;
      if (m.loading) continue;
      if (!m.known)
        out.push_back({CopyEvent::Kind::lost, id, c.start_seq, m.why});
      else if (m.copied == m.grains && m.redirected.empty() && m.changing.empty())
        // (Not while target reads sent to the source are out: once the
        // mapping is idle, nothing holds source writes back for them.)
        out.push_back({CopyEvent::Kind::copied, id, c.start_seq, {}});
      else if (c.state == FcState::stopping && cleaned(m))
        out.push_back({CopyEvent::Kind::cleaned, id, c.start_seq, {}});
    }
  }
  return out;
}

std::optional<CopyFigures> FlashCopyFacility::figures(uint32_t mapping) const {
  auto it = maps_.find(mapping);
  if (it == maps_.end()) return std::nullopt;
  const Map& m = *it->second;
  return CopyFigures{m.known && !m.loading, m.grains, m.copied, m.layout.start_seq,
                     m.loading ? "its bitmap is being read back" : m.why};
}

nlohmann::json FlashCopyFacility::inspect() const {
  nlohmann::json maps = nlohmann::json::object();
  for (const auto& [id, m] : maps_)
    maps[std::to_string(id)] = {{"known", m->known},       {"grains", m->grains},
                                {"copied", m->copied},     {"copying", m->changing.size()},
                                {"background", m->background}, {"start", m->layout.start_seq}};
  return {{"requests", stats_.requests},
          {"grain_copies", stats_.grain_copies},
          {"background_copies", stats_.background_copies},
          {"clean_copies", stats_.clean_copies},
          {"redirected_reads", stats_.redirected_reads},
          {"waits", stats_.waits},
          {"paused", stats_.paused},
          {"paused_now", paused_.size()},
          {"copy_errors", stats_.copy_errors},
          {"bytes_copied", stats_.bytes_copied},
          {"incremental_kept", stats_.incremental_kept},
          {"bitmap_writes", stats_.bitmap_writes},
          {"bitmap_waits", stats_.bitmap_waits},
          {"bitmap_loads", stats_.bitmap_loads},
          {"history_writes", stats_.history_writes},
          {"history_loads", stats_.history_loads},
          {"histories", histories_.size()},
          {"mappings", maps}};
}

}  // namespace sve

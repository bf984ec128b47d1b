// The point-in-time copy facility's work at each tick: the background copy
// at a mapping's copy rate, and the cleaning of a stopping mapping at its
// clean rate (docs/flashcopy.md).
#include <algorithm>

#include "flashcopy/flashcopy_facility.hpp"
#include "flashcopy/flashcopy_map.hpp"
#include "model/fc_edits.hpp"

namespace sve {
namespace {
constexpr uint32_t kMaxInFlight = 16;  // copies per mapping
}

void FlashCopyFacility::tick(uint64_t now_ms) {
  uint64_t elapsed = last_tick_ ? now_ms - last_tick_ : 0;
  last_tick_ = now_ms;
  std::vector<Map*> maps;
  for (auto& [id, m] : maps_) maps.push_back(m.get());
  std::vector<History*> histories;
  for (auto& [id, h] : histories_) histories.push_back(h.get());
  for (History* h : histories) flush_history(*h);  // (written whole once a start ends)
  for (Map* m : maps) {
    flush_dirty(*m);  // the background copy's bits
    if (m->layout.state == FcState::stopping)
      clean(*m, elapsed);
    else
      background(*m, elapsed);
  }
}

void FlashCopyFacility::background(Map& m, uint64_t elapsed_ms) {
  uint64_t rate = copy_rate_bytes(m.layout.copy_rate);
  if (!m.known || rate == 0 || m.copied == m.grains || m.layout.state != FcState::copying) {
    m.budget = 0;
    return;
  }
  // A second's worth at most: a copy that fell behind does not burst.
  m.budget = std::min<double>(m.budget + static_cast<double>(rate) * elapsed_ms / 1000.0,
                              static_cast<double>(std::max<uint64_t>(rate, m.grain_bytes())));
  if (loading_) return;  // (a copy may read through a mapping being read back)
  uint64_t scanned = 0;
  while (m.budget >= static_cast<double>(m.grain_bytes()) && m.background < kMaxInFlight &&
         scanned < m.grains) {
    uint64_t g = m.cursor;
    m.cursor = (m.cursor + 1) % m.grains;
    ++scanned;
    if (m.copied_grain(g) || m.changing.count(g)) continue;
    m.budget -= static_cast<double>(m.grain_length(g));
    m.changing[g];  // requests touching it wait from now on
    copy_grain(m, g, true);
  }
}

std::vector<FlashCopyFacility::Map*> FlashCopyFacility::dependents(const Map& m) const {
  std::vector<Map*> out;
  auto s = maps_of_source_.find(m.layout.target);
  if (s == maps_of_source_.end()) return out;
  for (uint32_t id : s->second) {
    Map* d = maps_.at(id).get();
    if (d != &m && m.layout.before(d->layout)) out.push_back(d);
  }
  return out;
}

// Stopping: each grain it has not copied is copied by every mapping that
// reads through its target and has not copied it either (their targets
// get what they read through it), in order, at the clean rate, and their
// bits are made durable: once it is stopped, nothing else knows where those
// grains were (a crash that lost such a bit would read the grain from its
// target, which never had it). A grain it copied needs nothing: its target
// keeps it once stopped (offline to hosts, still read by those mappings).
void FlashCopyFacility::clean(Map& m, uint64_t elapsed_ms) {
  if (!m.known || m.layout.state != FcState::stopping) return;
  // Rate 0 cleans at the slowest rate, not never: the stop must end.
  uint64_t rate = copy_rate_bytes(std::max<uint32_t>(m.layout.clean_rate, 1));
  m.clean_budget =
      std::min<double>(m.clean_budget + static_cast<double>(rate) * elapsed_ms / 1000.0,
                       static_cast<double>(std::max<uint64_t>(rate, m.grain_bytes())));
  if (loading_) return;
  std::vector<Map*> later = dependents(m);
  const uint64_t G = m.grain_bytes();
  bool leading = true;  // every grain before this one needs nothing more
  uint64_t scanned = 0;
  for (uint64_t g = m.clean_cursor; g < m.grains && scanned < 4096; ++g, ++scanned) {
    bool done = true;
    if (!m.copied_grain(g)) {
      uint64_t a = g * G, b = a + m.grain_length(g);
      for (Map* d : later) {
        if (!d->known) continue;  // (suspended with it)
        const uint64_t DG = d->grain_bytes();
        for (uint64_t dg = a / DG; dg <= (b - 1) / DG; ++dg) {
          if (d->copied_grain(dg)) {
            if (d->durable_grain(dg)) continue;
            done = false;
            write_page(*d, dg / kFcGrainsPerPage, true);  // (or once more, if being written)
            continue;
          }
          done = false;
          if (d->changing.count(dg)) continue;  // being copied
          if (m.cleaning >= kMaxInFlight ||
              m.clean_budget < static_cast<double>(d->grain_length(dg)))
            return;
          m.clean_budget -= static_cast<double>(d->grain_length(dg));
          d->changing[dg];
          copy_grain(*d, dg, false, &m);
        }
      }
    }
    if (done && leading) m.clean_cursor = g + 1;
    leading = leading && done;
  }
}

bool FlashCopyFacility::cleaned(const Map& m) const {
  // (Not while a bitmap is read back: a mapping being loaded knows nothing yet.)
  if (!m.known || loading_ || m.cleaning || !m.redirected.empty()) return false;
  std::vector<Map*> later = dependents(m);
  const uint64_t G = m.grain_bytes();
  for (uint64_t g = m.clean_cursor; g < m.grains; ++g) {
    if (m.copied_grain(g)) continue;
    uint64_t a = g * G, b = a + m.grain_length(g);
    for (const Map* d : later) {
      if (!d->known) continue;
      const uint64_t DG = d->grain_bytes();
      for (uint64_t dg = a / DG; dg <= (b - 1) / DG; ++dg)
        if (!d->copied_grain(dg) || !d->durable_grain(dg)) return false;
    }
  }
  return true;
}

}  // namespace sve

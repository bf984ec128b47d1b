// The copy side of the point-in-time copy facility: grain copies before a
// write, target reads served from the source, the background copy.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "flashcopy/flashcopy_facility.hpp"
#include "flashcopy/flashcopy_map.hpp"
#include "model/fc_edits.hpp"

namespace sve {

struct FlashCopySteps {
  using Map = FlashCopyFacility::Map;
  using Job = FlashCopyFacility::Job;

  // A grain read from the source, then written to the target.
  struct GrainCopy final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    uint64_t grain;
    uint32_t target;
    bool background;
    bool writing = false;
    BufferRef buffer;
    GrainCopy(const Map& m, uint64_t g, bool bg)
        : mapping(m.layout.id), incarnation(m.incarnation), grain(g), target(m.layout.target),
          background(bg) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      Map* m = f.find_map(mapping, incarnation);
      if (writing) {
        auto it = f.writes_below_.find(target);
        if (it != f.writes_below_.end() && --it->second == 0) f.writes_below_.erase(it);
      }
      if (!m) {  // the mapping was dropped meanwhile: nothing is waiting here
        delete this;
        return;
      }
      if (writing || child.status) {
        if (!child.status) f.stats_.bytes_copied += child.length;
        int status = child.status;
        uint64_t g = grain;
        bool bg = background;
        delete this;
        f.grain_copied(*m, g, status);
        if (bg) {
          // The next within the budget now, not at the next tick: a tick
          // every 50 ms would cap the copy at what is in flight per tick.
          --m->background;
          f.background(*m, 0);
        }
        return;
      }
      // The grain as the source holds it: the target gets it before the
      // write that waits for it may change the source.
      writing = true;
      ++f.writes_below_[target];
      IoRequestPtr write = make_request();
      write->op = IoOp::write;
      write->volume = target;
      write->offset = child.offset;
      write->length = child.length;
      write->buffer = buffer;
      write->client = f.client_for(target);
      write->cookie = reinterpret_cast<uint64_t>(this);
      f.lower_for(target).submit(std::move(write));
    }
  };

  // A run of a target read, from the target or (not yet copied) the source.
  struct ReadPiece final : FlashCopyFacility::Step {
    Job* job;
    uint32_t mapping;
    uint64_t incarnation;
    uint64_t first = 0, last = 0;  // grains read from the source
    bool from_source;
    ReadPiece(Job* j, const Map& m, bool source) : job(j), mapping(m.layout.id),
        incarnation(m.incarnation), from_source(source) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      if (child.status && !job->status) job->status = child.status;
      Map* m = from_source ? f.find_map(mapping, incarnation) : nullptr;
      // The mapping stopped while this was read from the source, which
      // nothing held back since: the target is offline now anyway.
      if (from_source && !m && !job->status) job->status = EIO;
      for (uint64_t g = first; m && g <= last; ++g) {
        auto it = m->redirected.find(g);
        if (it == m->redirected.end() || --it->second) continue;
        m->redirected.erase(it);
        if (m->finishing.count(g)) f.finish_grain(*m, g);
      }
      Job* j = job;
      delete this;
      piece_done(j);
    }
  };

  static void piece_done(Job* job) {
    if (--job->pending) return;
    IoRequestPtr request = std::move(job->request);
    int status = job->status;
    delete job;
    complete(std::move(request), status);
  }
};

// A request waits if a grain it touches is being copied: true if it does.
bool FlashCopyFacility::wait_for_grains(Map& m, IoRequest& request, IoRequestPtr& hold) {
  const uint64_t G = m.grain_bytes();
  if (request.length == 0) return false;
  uint64_t first = request.offset / G, last = (request.offset + request.length - 1) / G;
  for (uint64_t g = first; g <= last && g < m.grains; ++g) {
    auto it = m.changing.find(g);
    if (it == m.changing.end()) continue;
    ++stats_.waits;
    it->second.push_back(std::move(hold));
    return true;
  }
  return false;
}

// A write to a source: every grain it touches that a mapping has not
// copied yet is copied first; then it goes down.
void FlashCopyFacility::run_source(IoRequestPtr request) {
  uint64_t end = request->offset + request->length;
  std::vector<std::pair<Map*, uint64_t>> needed;
  for (uint32_t id : maps_of_source_[request->volume]) {
    Map& m = *maps_[id];
    if (m.loading) {  // which grains are copied is being read back
      m.load_waiting.push_back(std::move(request));
      return;
    }
    if (!m.known || request->length == 0 || end > m.layout.size_bytes || end < request->offset)
      continue;  // (a range past the end fails below)
    if (wait_for_grains(m, *request, request)) return;
    const uint64_t G = m.grain_bytes();
    if (m.layout.incremental) mark_grains(m.changed, G, request->offset, request->length);
    for (uint64_t g = request->offset / G; g <= (end - 1) / G; ++g)
      if (!m.copied_grain(g)) needed.emplace_back(&m, g);
  }
  if (needed.empty()) {
    // Every grain copied: their bits durable before the source changes.
    for (uint32_t id : maps_of_source_[request->volume]) {
      Map& m = *maps_[id];
      if (m.known && end <= m.layout.size_bytes && wait_durable(m, *request, request)) return;
    }
    return pass(std::move(request));
  }
  // Parked before the copies start (a copy that completed inline would
  // otherwise be gone before the request waits for it).
  ++stats_.waits;
  needed.front().first->changing[needed.front().second].push_back(std::move(request));
  for (auto& [m, g] : needed) copy_grain(*m, g, false);
}

void FlashCopyFacility::run_target(Map& m, IoRequestPtr request) {
  if (m.loading) {
    m.load_waiting.push_back(std::move(request));
    return;
  }
  if (!m.known) return complete(std::move(request), EIO);
  uint64_t end = request->offset + request->length;
  if (end < request->offset || end > m.layout.size_bytes) return complete(std::move(request), ERANGE);
  if (request->length == 0) return pass(std::move(request));
  if (wait_for_grains(m, *request, request)) return;
  const uint64_t G = m.grain_bytes();
  uint64_t first = request->offset / G, last = (end - 1) / G;
  if (writes(*request)) {
    if (m.layout.incremental) mark_grains(m.changed, G, request->offset, request->length);
    // A grain not yet copied is copied first, so that the rest of it (and
    // all of it, for a trim) reads as the point in time.
    std::vector<uint64_t> needed;
    for (uint64_t g = first; g <= last; ++g)
      if (!m.copied_grain(g)) needed.push_back(g);
    if (needed.empty()) {
      if (wait_durable(m, *request, request)) return;  // a redo of the copy must not undo it
      return pass(std::move(request));
    }
    ++stats_.waits;
    m.changing[needed.front()].push_back(std::move(request));  // parked first, as above
    for (uint64_t g : needed) copy_grain(m, g, false);
    return;
  }
  read_target(m, std::move(request));
}

// Runs of copied grains read from the target, the others from the source
// (which still holds them as they were at the point in time).
void FlashCopyFacility::read_target(Map& m, IoRequestPtr request) {
  const uint64_t G = m.grain_bytes();
  uint64_t end = request->offset + request->length;
  uint64_t first = request->offset / G, last = (end - 1) / G;
  bool all_copied = true;
  for (uint64_t g = first; g <= last && all_copied; ++g) all_copied = m.copied_grain(g);
  if (all_copied) return pass(std::move(request));
  auto* job = new Job{request};
  uint64_t g = first;
  while (g <= last) {
    bool copied = m.copied_grain(g);
    uint64_t run_end = g;
    while (run_end + 1 <= last && m.copied_grain(run_end + 1) == copied) ++run_end;
    uint64_t a = std::max(request->offset, g * G), b = std::min(end, (run_end + 1) * G);
    auto* step = new FlashCopySteps::ReadPiece(job, m, !copied);
    uint32_t vdisk = copied ? m.layout.target : m.layout.source;
    if (!copied) {
      step->first = g;
      step->last = run_end;
      for (uint64_t x = g; x <= run_end; ++x) ++m.redirected[x];
      ++stats_.redirected_reads;
    }
    IoRequestPtr child = make_request();
    child->op = IoOp::read;
    child->flags = request->flags;
    child->volume = vdisk;
    child->offset = a;
    child->length = b - a;
    child->buffer = request->buffer;
    child->buffer_offset = request->buffer_offset + (a - request->offset);
    child->client = client_for(vdisk);
    child->cookie = reinterpret_cast<uint64_t>(step);
    ++job->pending;
    lower_for(vdisk).submit(std::move(child));
    g = run_end + 1;
  }
  FlashCopySteps::piece_done(job);  // all issued
}

void FlashCopyFacility::copy_grain(Map& m, uint64_t g, bool background) {
  m.changing[g];  // requests touching it wait from now on
  if (background) {
    ++m.background;
    ++stats_.background_copies;
  } else {
    ++stats_.grain_copies;
  }
  auto* step = new FlashCopySteps::GrainCopy(m, g, background);
  uint64_t length = m.grain_length(g);
  step->buffer = Buffer::allocate(length);
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = m.layout.source;
  read->offset = g * m.grain_bytes();
  read->length = length;
  read->buffer = step->buffer;
  read->client = this;  // the source is this core's
  read->cookie = reinterpret_cast<uint64_t>(step);
  lower_.submit(std::move(read));
}

void FlashCopyFacility::grain_copied(Map& m, uint64_t g, int status) {
  if (status) {
    ++stats_.copy_errors;
    lose(m, std::string("a grain could not be copied: ") + std::strerror(status));
  } else {
    m.set_copied(g);
  }
  // Target reads sent to the source before the copy must be back before a
  // source write may change the grain.
  if (!status && m.redirected.count(g)) {
    m.finishing.insert(g);
    return;
  }
  finish_grain(m, g);
}

void FlashCopyFacility::finish_grain(Map& m, uint64_t g) {
  m.finishing.erase(g);
  auto it = m.changing.find(g);
  if (it == m.changing.end()) return;
  std::vector<IoRequestPtr> waiting = std::move(it->second);
  m.changing.erase(it);
  for (auto& r : waiting) route(std::move(r));
}

void FlashCopyFacility::lose(Map& m, std::string why) {
  if (!m.known) return;
  m.known = false;
  m.why = std::move(why);
}

// ---- the background copy ------------------------------------------------------------

void FlashCopyFacility::tick(uint64_t now_ms) {
  uint64_t elapsed = last_tick_ ? now_ms - last_tick_ : 0;
  last_tick_ = now_ms;
  std::vector<Map*> maps;
  for (auto& [id, m] : maps_) maps.push_back(m.get());
  for (Map* m : maps) {
    flush_dirty(*m);  // the background copy's bits
    background(*m, elapsed);
  }
}

void FlashCopyFacility::background(Map& m, uint64_t elapsed_ms) {
  uint64_t rate = copy_rate_bytes(m.layout.copy_rate);
  if (!m.known || rate == 0 || m.copied == m.grains) {
    m.budget = 0;
    return;
  }
  // A second's worth at most: a copy that fell behind does not burst.
  m.budget = std::min<double>(m.budget + static_cast<double>(rate) * elapsed_ms / 1000.0,
                              static_cast<double>(std::max<uint64_t>(rate, m.grain_bytes())));
  constexpr uint32_t kMaxInFlight = 16;
  uint64_t scanned = 0;
  while (m.budget >= static_cast<double>(m.grain_bytes()) && m.background < kMaxInFlight &&
         scanned < m.grains) {
    uint64_t g = m.cursor;
    m.cursor = (m.cursor + 1) % m.grains;
    ++scanned;
    if (m.copied_grain(g) || m.changing.count(g)) continue;
    m.budget -= static_cast<double>(m.grain_length(g));
    copy_grain(m, g, true);
  }
}

}  // namespace sve

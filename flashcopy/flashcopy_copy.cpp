// The copy side of the point-in-time copy facility: grain copies before a
// write, target reads through the mappings they depend on (cascades and
// restores, docs/flashcopy.md), the background copy.
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
  using Redirect = FlashCopyFacility::Redirect;

  // A grain read as the source read when the mapping started (through the
  // mappings the source reads through), then written to the target.
  struct GrainCopy final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    uint64_t grain;
    uint64_t length;
    uint32_t target;
    bool background;
    uint32_t cleaner = 0;  // a stopping mapping this copy cleans for
    uint64_t cleaner_incarnation = 0;
    uint32_t pending = 1;  // reads in flight, plus one while they are issued
    int status = 0;
    bool writing = false, submitted = false;
    std::vector<Redirect> via;  // the mappings its reads went through
    BufferRef buffer;
    GrainCopy(const Map& m, uint64_t g, bool bg)
        : mapping(m.layout.id), incarnation(m.incarnation), grain(g), length(m.grain_length(g)),
          target(m.layout.target), background(bg) {}

    void done(FlashCopyFacility& f, IoRequest& child) override {
      if (!status) status = child.status;
      if (!writing) return read_done(f);
      if (submitted) {
        auto it = f.copy_writes_below_.find(target);
        if (it != f.copy_writes_below_.end() && --it->second == 0) f.copy_writes_below_.erase(it);
        if (!child.status) f.stats_.bytes_copied += child.length;
      }
      finish(f);
    }

    // Every read back: the grain goes to the target (copy_write).
    void read_done(FlashCopyFacility& f) {
      if (--pending) return;
      bool gone = false;
      f.release_redirects(via, gone);
      // A mapping read through was dropped while this read its source: the
      // grain is copied again, by the request that waits for it.
      if (gone && !status) status = ECANCELED;
      Map* m = f.find_map(mapping, incarnation);
      if (!m || status) return finish(f);
      writing = true;
      IoRequestPtr write = make_request();
      write->op = IoOp::write;
      write->volume = target;
      write->offset = grain * m->grain_bytes();
      write->length = length;
      write->buffer = buffer;
      write->client = f.client_for(target);
      write->cookie = reinterpret_cast<uint64_t>(this);
      f.copy_writes_.insert(write.get());
      f.copy_write(std::move(write));
    }

    void finish(FlashCopyFacility& f) {
      Map* m = f.find_map(mapping, incarnation);
      Map* x = cleaner ? f.find_map(cleaner, cleaner_incarnation) : nullptr;
      int st = status;
      uint64_t g = grain;
      bool bg = background;
      delete this;
      if (x) --x->cleaning;
      if (m) {
        f.grain_copied(*m, g, st);
        if (bg) {
          // The next within the budget now, not at the next tick: a tick
          // every 50 ms would cap the copy at what is in flight per tick.
          --m->background;
          f.background(*m, 0);
        }
      }
      if (x) f.clean(*x, 0);
    }
  };

  // A run of a target read, as planned through the mappings.
  struct ReadPiece final : FlashCopyFacility::Step {
    Job* job;
    std::vector<Redirect> via;
    ReadPiece(Job* j, std::vector<Redirect> v) : job(j), via(std::move(v)) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      if (child.status && !job->status) job->status = child.status;
      bool gone = false;
      f.release_redirects(via, gone);
      // A mapping it read through stopped while it read that mapping's
      // source, which nothing held back since: the target is offline now,
      // or the read is answered with an error rather than what it found.
      if (gone && !job->status) job->status = EIO;
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

// ---- planning reads -----------------------------------------------------------------

bool FlashCopyFacility::plan_read(uint32_t vdisk, const CopyLayout* reader, uint64_t a,
                                  uint64_t b, std::vector<Redirect>& via,
                                  std::vector<Span>& out) {
  Map* m = target_map(vdisk);
  // A mapping that started after the reader does not change what the
  // reader sees: its copies into this vdisk first copied to the reader.
  if (!m || (reader && !m->layout.before(*reader))) {
    out.push_back({vdisk, a, b, via});
    return true;
  }
  if (!m->known) return false;
  const uint64_t G = m->grain_bytes();
  while (a < b) {
    uint64_t g = a / G;
    bool copied = m->copied_grain(g);
    uint64_t last = g;
    while ((last + 1) * G < b && m->copied_grain(last + 1) == copied) ++last;
    uint64_t run_end = std::min(b, (last + 1) * G);
    if (copied) {
      out.push_back({vdisk, a, run_end, via});
    } else {
      via.push_back({m->layout.id, m->incarnation, g, last});
      bool ok = plan_read(m->layout.source, &m->layout, a, run_end, via, out);
      via.pop_back();
      if (!ok) return false;
    }
    a = run_end;
  }
  return true;
}

void FlashCopyFacility::hold_redirects(const std::vector<Redirect>& via) {
  for (const Redirect& r : via)
    if (Map* m = find_map(r.mapping, r.incarnation))
      for (uint64_t g = r.first; g <= r.last; ++g) ++m->redirected[g];
}

void FlashCopyFacility::release_redirects(const std::vector<Redirect>& via, bool& gone) {
  for (const Redirect& r : via) {
    Map* m = find_map(r.mapping, r.incarnation);
    if (!m) {
      gone = true;
      continue;
    }
    for (uint64_t g = r.first; g <= r.last; ++g) {
      auto it = m->redirected.find(g);
      if (it == m->redirected.end() || --it->second) continue;
      m->redirected.erase(it);
      if (m->finishing.count(g)) finish_grain(*m, g);
    }
  }
}

// ---- host requests ------------------------------------------------------------------

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

void FlashCopyFacility::uncopied(Map& m, uint64_t offset, uint64_t length,
                                 std::vector<std::pair<Map*, uint64_t>>& out) {
  const uint64_t G = m.grain_bytes();
  if (length == 0) return;
  for (uint64_t g = offset / G; g <= (offset + length - 1) / G && g < m.grains; ++g)
    if (!m.copied_grain(g)) out.emplace_back(&m, g);
}

void FlashCopyFacility::copy_first(std::vector<std::pair<Map*, uint64_t>>& needed,
                                   IoRequestPtr request) {
  // Every grain is marked before any copy starts, and the request parked:
  // a copy that completes inline releases only what waits for its grain.
  for (auto& [m, g] : needed) m->changing[g];
  ++stats_.waits;
  needed.front().first->changing[needed.front().second].push_back(std::move(request));
  for (auto& [m, g] : needed) copy_grain(*m, g, false);
}

// A write to a vdisk of executing mappings. Where it is a target, a grain
// not yet copied is copied first (so that the rest of it, and all of it for
// a trim, reads as the point in time); where it is a source, every mapping
// that has not copied a grain it touches copies it first. Once every grain
// is copied, their bits are durable before the write goes down.
void FlashCopyFacility::run_write(IoRequestPtr request) {
  if (loading_) {  // which grains are copied is being read back
    load_waiting_.push_back(std::move(request));
    return;
  }
  uint32_t v = request->volume;
  uint64_t end = request->offset + request->length;
  std::vector<Map*> maps;
  if (Map* t = target_map(v)) {
    if (!t->known) return complete(std::move(request), EIO);
    if (end < request->offset || end > t->layout.size_bytes)
      return complete(std::move(request), ERANGE);
    maps.push_back(t);
  }
  if (auto s = maps_of_source_.find(v); s != maps_of_source_.end())
    for (uint32_t id : s->second) {
      Map& m = *maps_[id];
      // (A range past the end fails below.)
      if (m.known && end <= m.layout.size_bytes && end >= request->offset) maps.push_back(&m);
    }
  if (request->length == 0 || maps.empty()) return pass(std::move(request));
  if (copy_before_write(maps, request)) return;
  pass(std::move(request));
}

bool FlashCopyFacility::copy_before_write(const std::vector<Map*>& maps, IoRequestPtr& write) {
  for (Map* m : maps)
    if (wait_for_grains(*m, *write, write)) return true;
  std::vector<std::pair<Map*, uint64_t>> needed;
  for (Map* m : maps) {
    if (m->layout.incremental)
      mark_grains(m->changed, m->grain_bytes(), write->offset, write->length);
    uncopied(*m, write->offset, write->length, needed);
  }
  if (!needed.empty()) {
    copy_first(needed, std::move(write));
    return true;
  }
  for (Map* m : maps)
    if (wait_durable(*m, *write, write) || wait_changes_durable(*m, *write, write)) return true;
  return false;
}

// Runs of the target read from where the plan says: copied grains from the
// target, the others from the source as it was (through the mappings the
// source itself reads through, if it is a target too).
void FlashCopyFacility::read_target(Map& m, IoRequestPtr request) {
  if (loading_) {
    load_waiting_.push_back(std::move(request));
    return;
  }
  if (!m.known) return complete(std::move(request), EIO);
  uint64_t end = request->offset + request->length;
  if (end < request->offset || end > m.layout.size_bytes)
    return complete(std::move(request), ERANGE);
  if (request->length == 0) return pass(std::move(request));
  if (wait_for_grains(m, *request, request)) return;
  std::vector<Redirect> via;
  std::vector<Span> spans;
  if (!plan_read(m.layout.target, nullptr, request->offset, end, via, spans))
    return complete(std::move(request), EIO);
  if (spans.size() == 1 && spans[0].via.empty()) return pass(std::move(request));
  auto* job = new Job{request};
  for (Span& s : spans) {
    if (!s.via.empty()) ++stats_.redirected_reads;
    hold_redirects(s.via);
    auto* step = new FlashCopySteps::ReadPiece(job, std::move(s.via));
    IoRequestPtr child = make_request();
    child->op = IoOp::read;
    child->flags = request->flags;
    child->volume = s.vdisk;
    child->offset = s.a;
    child->length = s.b - s.a;
    child->buffer = request->buffer;
    child->buffer_offset = request->buffer_offset + (s.a - request->offset);
    child->client = client_for(s.vdisk);
    child->cookie = reinterpret_cast<uint64_t>(step);
    ++job->pending;
    lower_for(s.vdisk).submit(std::move(child));
  }
  FlashCopySteps::piece_done(job);  // all issued
}

// ---- grain copies ---------------------------------------------------------------------

void FlashCopyFacility::copy_grain(Map& m, uint64_t g, bool background, Map* cleaner) {
  // (The caller marked the grain changing: requests touching it wait.)
  if (background) {
    ++m.background;
    ++stats_.background_copies;
  } else if (cleaner) {
    ++cleaner->cleaning;
    ++stats_.clean_copies;
  } else {
    ++stats_.grain_copies;
  }
  auto* step = new FlashCopySteps::GrainCopy(m, g, background);
  if (cleaner) {
    step->cleaner = cleaner->layout.id;
    step->cleaner_incarnation = cleaner->incarnation;
  }
  const uint64_t a = g * m.grain_bytes();
  std::vector<Redirect> via;
  std::vector<Span> spans;
  if (!plan_read(m.layout.source, &m.layout, a, a + step->length, via, spans)) {
    step->status = ENOLINK;  // a mapping its source reads through does not know its grains
    return step->read_done(*this);
  }
  step->buffer = Buffer::allocate(step->length);
  for (Span& s : spans) {
    hold_redirects(s.via);
    step->via.insert(step->via.end(), s.via.begin(), s.via.end());
    IoRequestPtr read = make_request();
    read->op = IoOp::read;
    read->volume = s.vdisk;
    read->offset = s.a;
    read->length = s.b - s.a;
    read->buffer = step->buffer;
    read->buffer_offset = s.a - a;
    read->client = client_for(s.vdisk);
    read->cookie = reinterpret_cast<uint64_t>(step);
    ++step->pending;
    lower_for(s.vdisk).submit(std::move(read));
  }
  step->read_done(*this);  // all issued
}

// The mappings that started earlier from the copy's target copy the grain
// first: a restore's copy changes its target (their source) under them.
// Those that started later read through this mapping, which the copy does
// not change. Then their bits are durable, and the grain goes down.
void FlashCopyFacility::copy_write(IoRequestPtr write) {
  auto* step = reinterpret_cast<FlashCopySteps::GrainCopy*>(write->cookie);
  Map* m = find_map(step->mapping, step->incarnation);
  if (!m) {  // dropped while the write waited
    copy_writes_.erase(write.get());
    write->status = ECANCELED;
    return step->done(*this, *write);
  }
  if (loading_) {
    load_waiting_.push_back(std::move(write));
    return;
  }
  std::vector<Map*> earlier;
  if (auto s = maps_of_source_.find(m->layout.target); s != maps_of_source_.end())
    for (uint32_t id : s->second) {
      Map& x = *maps_[id];
      if (&x != m && x.known && x.layout.before(m->layout)) earlier.push_back(&x);
    }
  if (copy_before_write(earlier, write)) return;
  copy_writes_.erase(write.get());
  step->submitted = true;
  ++copy_writes_below_[step->target];
  uint32_t target = step->target;
  lower_for(target).submit(std::move(write));
}

void FlashCopyFacility::grain_copied(Map& m, uint64_t g, int status) {
  if (status == ENOLINK) {
    lose(m, "a mapping its source reads through does not know which grains it copied");
  } else if (status && status != ECANCELED) {  // (cancelled: copied again when asked)
    ++stats_.copy_errors;
    lose(m, std::string("a grain could not be copied: ") + std::strerror(status));
  } else if (!status) {
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
  for (auto& r : waiting) resume(std::move(r));
}

void FlashCopyFacility::lose(Map& m, std::string why) {
  if (!m.known) return;
  m.known = false;
  m.why = std::move(why);
}

}  // namespace sve

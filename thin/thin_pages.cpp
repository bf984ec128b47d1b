// A thin vdisk's map on disk: loading it, writing its pages (group
// commits, each after a flush when it names new data), and freeing grains
// once the pages unmapping them are durable.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "thin/thin_steps.hpp"

namespace sve {

namespace {
constexpr uint32_t kLoadChunkPages = 128;  // 1 MiB of slots per read
}  // namespace

// ---- loading ----------------------------------------------------------------

void ThinFacility::start_load(Vol& v) {
  v.state = Vol::State::loading;
  v.map = std::make_unique<ThinMap>(v.id, v.geo, v.real_bytes);
  v.busy.resize(v.map->data_grains(), 0);
  v.next_load_page = 0;
  if (v.real_bytes < v.geo.meta_bytes()) {
    spdlog::error("thin vdisk {}: its real capacity ({} bytes) cannot hold its map ({} bytes)",
                  v.name, v.real_bytes, v.geo.meta_bytes());
    return loaded(v, EIO);
  }
  load_next(v);
}

void ThinFacility::load_next(Vol& v) {
  uint32_t first = v.next_load_page;
  if (first >= v.geo.pages()) return loaded(v, 0);
  uint32_t n = std::min(kLoadChunkPages, v.geo.pages() - first);
  v.next_load_page = first + n;
  auto* step = new ThinSteps::Load(&v, first, n);
  step->buffer = Buffer::allocate(uint64_t{n} * 2 * kThinPageBytes);
  IoRequestPtr child = make_request();
  child->op = IoOp::read;
  child->buffer = step->buffer;
  ++v.inflight;
  issue(v, std::move(child), step, v.geo.slot_offset(first, 0),
        uint64_t{n} * 2 * kThinPageBytes);
}

void ThinFacility::loaded(Vol& v, int status) {
  if (status) {
    v.state = Vol::State::failed;
    spdlog::error("thin vdisk {}: its map could not be read ({}): its requests fail with EIO",
                  v.name, std::strerror(status));
  } else {
    v.last_check = v.map->finish_load();
    if (v.before) {  // a check: memory before, disk now
      const ThinMap& mem = *v.before;
      for (uint32_t page = 0; page < v.geo.pages(); ++page) {
        const uint32_t* a = mem.page_entries(page);
        const uint32_t* b = v.map->page_entries(page);
        for (uint32_t i = 0; i < mem.page_entry_count(page); ++i) v.last_check.differs += a[i] != b[i];
      }
      v.last_check.leaked += v.mem_check.leaked;
      v.last_check.lost += v.mem_check.lost;
      v.last_check.mapped_twice += v.mem_check.mapped_twice;
      v.before.reset();
    }
    ++v.checks;
    v.state = Vol::State::ready;
    // A threshold crossed before this load was announced then: only a new
    // crossing is an event.
    v.warned = v.warning_pct &&
               v.map->mapped_grains() * v.grain * 100 >= v.virtual_bytes * v.warning_pct;
    if (!v.last_check.clean() || v.last_check.torn_slots)
      spdlog::warn("thin vdisk {}: map loaded: {}", v.name, v.last_check.describe());
    else
      spdlog::debug("thin vdisk {}: map loaded: {}", v.name, v.last_check.describe());
    note_usage(v);
  }
  retry_parked(v);
}

// ---- map pages ----------------------------------------------------------------

void ThinFacility::commit(Vol& v, uint32_t page, Step* waiter) {
  Vol::PageCommit& pc = v.commits[page];
  pc.next.push_back(waiter);
  if (dynamic_cast<ThinSteps::Alloc*>(waiter)) pc.flush_first = true;
  pump_commits(v, page);
}

void ThinFacility::pump_commits(Vol& v, uint32_t page) {
  for (;;) {
    // Found again each time: a completion that runs inline (in a test)
    // may have pumped, and erased it, meanwhile.
    auto it = v.commits.find(page);
    if (it == v.commits.end()) return;
    Vol::PageCommit& pc = it->second;
    if (pc.ready && !pc.writing) {  // the page write, in the slot chosen now
      auto* step = static_cast<ThinSteps::Commit*>(pc.ready);
      pc.ready = nullptr;
      pc.writing = step;
      step->write = v.map->seal(page, step->image->data());
      IoRequestPtr child = make_request();
      child->op = IoOp::write;
      child->flags = io_flags::fua;
      child->buffer = step->image;
      issue(v, std::move(child), step, v.geo.slot_offset(page, step->write.slot),
            kThinPageBytes);
      continue;
    }
    // The next write's flush waits for the page write in flight: on a disk
    // whose syncs are the cost, larger batches (all that arrived during
    // both) beat overlapping them (measured: 18k against 11k first writes
    // a second on a file, docs/benchmarks.md).
    if (!pc.next.empty() && !pc.flushing && !pc.ready && !pc.writing) {
      auto* step = new ThinSteps::Commit(&v, page, pc.flush_first);
      step->waiters.swap(pc.next);
      pc.flush_first = false;
      ++v.inflight;
      // The page as memory holds it now: every entry set so far names data
      // whose write has completed, which the flush makes durable. Entries
      // set while the flush is in flight go in the next write of the page
      // (their data may not be durable yet).
      step->image = Buffer::allocate(kThinPageBytes);
      v.map->snapshot(page, step->image->data());
      if (step->flushing) {  // the data these entries name, durable first
        ++stats_.flushes;
        pc.flushing = step;
        IoRequestPtr child = make_request();
        child->op = IoOp::flush;
        issue(v, std::move(child), step, 0, 0);
      } else {
        pc.ready = step;
      }
      continue;
    }
    if (pc.idle()) v.commits.erase(it);
    return;
  }
}

// ---- freeing ----------------------------------------------------------------

void ThinFacility::unmapped(Vol& v, uint32_t pgrain) {
  v.releasing.insert(pgrain);
  try_release(v, pgrain);
}

void ThinFacility::try_release(Vol& v, uint32_t pgrain) {
  if (v.releasing.empty() || !v.releasing.count(pgrain) || v.busy[pgrain]) return;
  // The back end may drop the grain's blocks; it is free once that is done.
  auto* step = new ThinSteps::Release(&v, pgrain);
  ++v.inflight;
  IoRequestPtr child = make_request();
  child->op = IoOp::trim;
  issue(v, std::move(child), step, v.geo.grain_offset(pgrain), v.grain);
}

}  // namespace sve

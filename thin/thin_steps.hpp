#pragma once
// thin/ inside: the steps of a thin vdisk's requests, each answering to the
// requests it sent below (docs/thin.md has the order they keep).
#include <cassert>
#include <vector>

#include "thin/thin_vol.hpp"

namespace sve {

struct ThinSteps {
  using Vol = ThinFacility::Vol;
  using Job = ThinFacility::Job;

  // A piece on an allocated grain (or a flush, or a read of the map).
  struct Io final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint32_t pgrain;
    Io(Job* j, Vol* v, uint32_t p) : job(j), vol(v), pgrain(p) {}
    void done(ThinFacility& f, IoRequest& child) override {
      int status = child.status;
      if (pgrain != kThinNoGrain) {
        if (vol->busy_down(pgrain)) f.try_release(*vol, pgrain);
      }
      Job* j = job;
      delete this;
      f.job_piece_done(j, status);
    }
  };

  // A first write to a grain: its data and zeros, then its map page.
  struct Alloc final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint64_t vgrain;
    uint32_t pgrain;
    uint32_t pending = 0;
    int status = 0;
    Alloc(Job* j, Vol* v, uint64_t g, uint32_t p) : job(j), vol(v), vgrain(g), pgrain(p) {}
    void done(ThinFacility& f, IoRequest& child) override {
      if (child.status && !status) status = child.status;
      if (--pending) return;
      if (status) return finish(f, status, false);
      vol->map->set(vgrain, pgrain);
      vol->allocating.erase(vgrain);
      f.commit(*vol, static_cast<uint32_t>(vgrain / kThinEntriesPerPage), this);
    }
    void committed(ThinFacility& f, int st) override {
      if (!st) ++f.stats_.allocations;
      finish(f, st, true);
    }
    void finish(ThinFacility& f, int st, bool mapped) {
      if (!mapped) {  // never named by the map: free again at once
        vol->allocating.erase(vgrain);
        vol->map->release(pgrain);
      }
      Vol* v = vol;
      Job* j = job;
      uint64_t g = vgrain;
      delete this;
      f.job_piece_done(j, st);
      f.note_usage(*v);
      wake(f, *v, g);
    }
  };

  // A whole grain trimmed or zeroed: its entry cleared, then its page.
  struct Unmap final : ThinFacility::Step {
    Job* job;
    Vol* vol;
    uint64_t vgrain;
    uint32_t pgrain;
    Unmap(Job* j, Vol* v, uint64_t g, uint32_t p) : job(j), vol(v), vgrain(g), pgrain(p) {}
    void done(ThinFacility&, IoRequest&) override { assert(false); }
    void committed(ThinFacility& f, int st) override {
      Vol* v = vol;
      Job* j = job;
      uint64_t g = vgrain;
      uint32_t p = pgrain;
      delete this;
      v->freeing.erase(p);
      if (st == 0) {
        ++f.stats_.frees;
        f.unmapped(*v, p);
      } else {
        // The page did not go down: the grain stays the vdisk's until a
        // later write of the page carries the change (its entry is clear
        // in memory), and is not reused meanwhile.
        v->releasing.insert(p);
      }
      f.job_piece_done(j, st);
      f.note_usage(*v);
      wake(f, *v, g);
    }
  };

  // A map page written (after a flush, when it maps new data).
  struct Commit final : ThinFacility::Step {
    Vol* vol;
    uint32_t page;
    bool flushing;
    std::vector<ThinFacility::Step*> waiters;
    ThinMap::PageWrite write;
    BufferRef image;
    Commit(Vol* v, uint32_t p, bool f) : vol(v), page(p), flushing(f) {}
    void done(ThinFacility& f, IoRequest& child) override {
      Vol* v = vol;
      uint32_t p = page;
      int st = child.status;
      Vol::PageCommit& pc = v->commits[p];
      if (flushing) {
        pc.flushing = nullptr;
        flushing = false;
        if (st == 0) {  // the data is durable: the page may follow
          pc.ready = this;
          f.pump_commits(*v, p);
          return;
        }
      } else {
        pc.writing = nullptr;
        if (st == 0) {
          v->map->written(write);
          ++f.stats_.meta_writes;
        }
      }
      std::vector<ThinFacility::Step*> done_waiters = std::move(waiters);
      delete this;
      --v->inflight;
      f.pump_commits(*v, p);
      for (ThinFacility::Step* w : done_waiters) w->committed(f, st);
      f.idle_check(*v);
    }
  };

  // Reading the map's slots, a chunk at a time.
  struct Load final : ThinFacility::Step {
    Vol* vol;
    uint32_t first_page, pages;
    BufferRef buffer;
    Load(Vol* v, uint32_t first, uint32_t n) : vol(v), first_page(first), pages(n) {}
    void done(ThinFacility& f, IoRequest& child) override {
      Vol* v = vol;
      int st = child.status;
      if (st == 0) {
        ++f.stats_.meta_reads;
        const char* base = buffer->data();
        for (uint32_t i = 0; i < pages; ++i)
          v->map->load_page(first_page + i, base + uint64_t{i} * 2 * kThinPageBytes,
                            base + (uint64_t{i} * 2 + 1) * kThinPageBytes);
      }
      delete this;
      --v->inflight;
      if (v->drop_pending) return f.idle_check(*v);  // no longer ours to load
      if (st) return f.loaded(*v, st);
      f.load_next(*v);
    }
  };

  // A durably unmapped grain's trim below, before it is free again.
  struct Release final : ThinFacility::Step {
    Vol* vol;
    uint32_t pgrain;
    Release(Vol* v, uint32_t p) : vol(v), pgrain(p) {}
    void done(ThinFacility& f, IoRequest&) override {
      // Whatever the trim did (it is a hint), the grain is free now.
      Vol* v = vol;
      v->releasing.erase(pgrain);
      v->map->release(pgrain);
      delete this;
      --v->inflight;
      f.retry_parked(*v);
      f.idle_check(*v);
    }
  };

  // Requests that waited on a grain run again.
  static void wake(ThinFacility& f, Vol& v, uint64_t vgrain) {
    auto it = v.changing.find(vgrain);
    if (it == v.changing.end()) return;
    std::vector<IoRequestPtr> waiting = std::move(it->second);
    v.changing.erase(it);
    for (auto& r : waiting) {
      --v.inflight;  // counted while it waited
      f.run(v, std::move(r));
    }
    f.idle_check(v);
  }
};

}  // namespace sve

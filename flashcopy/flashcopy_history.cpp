// Incremental mappings between starts (docs/flashcopy.md): the grains the
// last start copied and nobody wrote since, kept in memory by the core
// that runs the mapping's writes, and on the back end in the mapping's
// bitmap vdisk (pages of kind `history`), so that a refresh after a crash,
// a restart or a takeover still copies only what changed.
//
// The rule that keeps a history read back true: a grain's bit is cleared
// on the back end, with FUA, before a write may change the grain (the
// write waits for its page). A history is written whole once its start
// ends; until a page of it is written, the back end holds it as the
// start's pages of that place: grains copied and not written meanwhile
// (those written during the start are noted on the second plane before
// the write goes on: flashcopy_bitmap.cpp). A mapping made before that
// plane existed holds no history until it is written (a crash before loses
// it, and the refresh copies everything).
#include <cerrno>
#include <cstring>

#include "flashcopy/flashcopy_facility.hpp"
#include "flashcopy/flashcopy_map.hpp"
#include "model/fc_bitmap_geometry.hpp"

namespace sve {

struct FlashCopyHistorySteps {
  using History = FlashCopyFacility::History;

  struct PageWrite final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    uint64_t page;
    bool other_slot_next;  // written twice (flashcopy_bitmap.cpp, "late writes")
    PageWrite(const History& h, uint64_t p)
        : mapping(h.mapping), incarnation(h.incarnation), page(p), other_slot_next(h.twice) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      History* h = f.find_history(mapping, incarnation);
      int status = child.status;
      if (h && !status && other_slot_next) {
        other_slot_next = false;
        f.submit_history_page(*h, page, this);  // the same bits (p.inflight)
        return;
      }
      uint64_t p = page;
      delete this;
      if (h) f.history_page_written(*h, p, status);
    }
  };

  struct Load final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    Load(const History& h) : mapping(h.mapping), incarnation(h.incarnation) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      History* h = f.find_history(mapping, incarnation);
      if (h) f.history_loaded(*h, *child.buffer, child.status);
      delete this;
    }
  };
};

FlashCopyFacility::History* FlashCopyFacility::find_history(uint32_t id, uint64_t incarnation) {
  auto it = histories_.find(id);
  if (it == histories_.end() || it->second->incarnation != incarnation) return nullptr;
  return it->second.get();
}

namespace {
std::unique_ptr<FlashCopyFacility::History> new_history(const CopyLayout& c, uint64_t grains,
                                                        uint64_t incarnation) {
  auto h = std::make_unique<FlashCopyFacility::History>();
  h->mapping = c.id;
  h->incarnation = incarnation;
  h->start_seq = c.start_seq;
  h->grain_bytes = c.grain_bytes;
  h->grains = grains;
  h->equal.assign((grains + 63) / 64, 0);
  h->durable = h->equal;
  h->bitmap = c.bitmap;
  h->changes = c.bitmap && c.changes_on_bitmap;
  if (c.bitmap) h->pages.resize(fc_bitmap_pages(grains));
  return h;
}
}  // namespace

void FlashCopyFacility::keep_history(const Map& m) {
  uint32_t id = m.layout.id;
  drop_history(id);
  if (!m.layout.incremental || !m.known || !m.seen_all) return;
  auto h = new_history(m.layout, m.grains, next_incarnation_++);
  h->twice = m.twice || read_back_.count(id) > 0;
  for (size_t i = 0; i < h->equal.size(); ++i) h->equal[i] = m.bits[i] & ~m.changed[i];
  // What the start's pages may say, if they say it (history_loaded): a
  // grain copied, and not written as far as the second plane knows. (A
  // write noted in memory may not be there yet: it waited for a grain copy
  // or its page when the start ended, and now goes on as a write between
  // starts, which must wait until the history's page says otherwise.)
  if (h->changes)
    for (size_t i = 0; i < h->equal.size(); ++i)
      h->durable[i] = m.bits[i] & ~m.changed_durable[i];
  for (uint64_t page = 0; page < h->pages.size(); ++page) h->dirty_pages.insert(page);
  histories_[id] = std::move(h);
}

void FlashCopyFacility::drop_history(uint32_t id) {
  auto it = histories_.find(id);
  if (it == histories_.end()) return;
  std::unique_ptr<History> h = std::move(it->second);
  histories_.erase(it);
  // Writes waiting for it go where the view says now.
  for (auto& page : h->pages)
    for (auto& r : page.waiting) paused_.push_back(std::move(r));
  for (auto& r : h->load_waiting) paused_.push_back(std::move(r));
}

// A restart of an incremental mapping: the grains the last start copied
// and nobody wrote since are the same on both vdisks.
void FlashCopyFacility::apply_history(Map& m) {
  auto it = histories_.find(m.layout.id);
  if (it == histories_.end()) return;
  const History& h = *it->second;
  if (h.loading || h.start_seq + 1 != m.layout.start_seq || h.grains != m.grains ||
      h.grain_bytes != m.grain_bytes() || h.equal.size() != m.bits.size())
    return;
  m.copied = 0;
  for (size_t i = 0; i < m.bits.size(); ++i) {
    m.bits[i] = h.equal[i];
    m.copied += static_cast<uint64_t>(__builtin_popcountll(m.bits[i]));
  }
  stats_.incremental_kept += m.copied;
  for (uint64_t page = 0; page < m.pages.size(); ++page) m.dirty_pages.insert(page);
}

// A write to a vdisk of an incremental mapping between its starts: its
// grains are not equal any more, and the write waits until the back end
// cannot say they are.
bool FlashCopyFacility::note_change(uint32_t mapping, IoRequestPtr& request) {
  auto it = histories_.find(mapping);
  if (it == histories_.end() || request->length == 0) return false;
  History& h = *it->second;
  if (h.loading) {
    h.load_waiting.push_back(std::move(request));
    return true;
  }
  const uint64_t G = h.grain_bytes;
  uint64_t first = request->offset / G, last = (request->offset + request->length - 1) / G;
  for (uint64_t g = first; g <= last && g < h.grains; ++g) {
    if (!History::bit(h.equal, g)) continue;
    h.equal[g / 64] &= ~(uint64_t{1} << (g % 64));
    if (!h.pages.empty()) h.dirty_pages.insert(g / kFcGrainsPerPage);
  }
  for (uint64_t g = first; g <= last && g < h.grains && !h.pages.empty(); ++g) {
    uint64_t page = g / kFcGrainsPerPage;
    History::Page& p = h.pages[page];
    uint64_t in_page = (g % kFcGrainsPerPage);
    bool maybe_equal = History::bit(h.durable, g) ||
                       (p.writing && History::bit(p.inflight, in_page));
    if (!maybe_equal) continue;
    ++stats_.bitmap_waits;
    p.waiting.push_back(std::move(request));
    write_history_page(h, page);
    return true;
  }
  return false;
}

void FlashCopyFacility::write_history_page(History& h, uint64_t page) {
  History::Page& p = h.pages[page];
  if (p.writing) {
    p.again = true;
    return;
  }
  h.dirty_pages.erase(page);
  p.writing = true;
  p.again = false;
  uint64_t first_word = page * kFcGrainsPerPage / 64;
  uint64_t n = fc_page_words(h.grains, page);
  p.inflight.assign(h.equal.begin() + first_word, h.equal.begin() + first_word + n);
  submit_history_page(h, page, new FlashCopyHistorySteps::PageWrite(h, page));
}

// One slot's write of p.inflight, at the page's next sequence.
void FlashCopyFacility::submit_history_page(History& h, uint64_t page, Step* step) {
  History::Page& p = h.pages[page];
  p.write_seq += 1;
  ++stats_.history_writes;
  IoRequestPtr write = make_request();
  write->op = IoOp::write;
  write->flags = io_flags::fua;
  write->volume = h.bitmap;
  write->offset = (page * 2 + p.write_seq % 2) * kFcPageBytes;
  write->length = kFcPageBytes;
  write->buffer = fc_encode_page({h.mapping, page, h.start_seq, FcPageKind::history},
                                 p.write_seq, p.inflight);
  write->client = client_for(h.bitmap);
  write->cookie = reinterpret_cast<uint64_t>(step);
  lower_for(h.bitmap).submit(std::move(write));
}

void FlashCopyFacility::history_page_written(History& h, uint64_t page, int status) {
  History::Page& p = h.pages[page];
  p.writing = false;
  std::vector<IoRequestPtr> waiting;
  waiting.swap(p.waiting);
  if (status) {
    // The change cannot be recorded: the writes waiting for it fail, the
    // history stays true (a later write tries the page again).
    for (auto& r : waiting) complete(std::move(r), EIO);
  } else {
    uint64_t first_word = page * kFcGrainsPerPage / 64;
    std::copy(p.inflight.begin(), p.inflight.end(), h.durable.begin() + first_word);
    // (A write whose grain was cleared after this page was taken waits again.)
    for (auto& r : waiting) resume(std::move(r));
  }
  if (find_history(h.mapping, h.incarnation) != &h) return;  // (dropped meanwhile)
  if (p.again && !p.writing) write_history_page(h, page);
}

// At a tick: pages of a history not written whole yet, or changed since.
void FlashCopyFacility::flush_history(History& h) {
  if (h.loading || h.pages.empty()) return;
  std::vector<uint64_t> dirty(h.dirty_pages.begin(), h.dirty_pages.end());
  for (uint64_t page : dirty) write_history_page(h, page);
}

// A history this core does not hold (the process restarted, this node took
// the mapping over, its home moved here): read back, its vdisks' writes
// waiting meanwhile.
void FlashCopyFacility::load_history(const CopyLayout& c) {
  uint64_t grains = c.grain_bytes ? (c.size_bytes + c.grain_bytes - 1) / c.grain_bytes : 0;
  auto h = new_history(c, grains, next_incarnation_++);
  h->loading = true;
  ++stats_.history_loads;
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = c.bitmap;
  read->offset = 0;
  read->length = fc_bitmap_vdisk_bytes(grains, h->changes);
  read->buffer = Buffer::allocate(read->length);
  read->client = client_for(c.bitmap);
  read->cookie = reinterpret_cast<uint64_t>(new FlashCopyHistorySteps::Load(*h));
  histories_[c.id] = std::move(h);
  lower_for(c.bitmap).submit(std::move(read));
}

// A page of history never written (the crash came before the tick after
// its start ended): the grains the start's pages say were copied and not
// written. (A copied page older than the last is a subset: still true.)
// (`copied` and `changed`: room for the whole bitmap, reused page to page.)
void FlashCopyFacility::equal_from_start(History& h, const Buffer& slots, uint64_t page,
                                         std::vector<uint64_t>& copied,
                                         std::vector<uint64_t>& changed) {
  copied.resize(h.equal.size());
  changed.resize(h.equal.size());
  uint64_t first_word = page * kFcGrainsPerPage / 64;
  for (uint64_t i = 0; i < fc_page_words(h.grains, page); ++i)
    copied[first_word + i] = changed[first_word + i] = 0;
  FcPageId id{h.mapping, page, h.start_seq, FcPageKind::copied};
  fc_decode_page(slots, id, h.grains, copied.data());
  id.kind = FcPageKind::changed;
  fc_decode_page(slots, id, h.grains, changed.data(), fc_changed_plane_offset(h.grains));
  for (uint64_t i = 0; i < fc_page_words(h.grains, page); ++i)
    h.equal[first_word + i] = copied[first_word + i] & ~changed[first_word + i];
}

void FlashCopyFacility::history_loaded(History& h, const Buffer& slots, int status) {
  h.loading = false;
  // Whoever wrote it before may have a page write still on its way.
  h.twice = true;
  read_back_.insert(h.mapping);
  if (!status) {
    std::vector<uint64_t> copied, changed;
    for (uint64_t page = 0; page < h.pages.size(); ++page) {
      int64_t seq = fc_decode_page(slots, {h.mapping, page, h.start_seq, FcPageKind::history},
                                   h.grains, h.equal.data());
      if (seq >= 0)
        h.pages[page].write_seq = static_cast<uint32_t>(seq);
      else if (h.changes)
        equal_from_start(h, slots, page, copied, changed);
    }
    if (h.grains % 64) h.equal.back() &= (uint64_t{1} << (h.grains % 64)) - 1;
    h.durable = h.equal;
  } else {
    // Unreadable: nothing is equal (the refresh copies all), and what the
    // back end holds is not known: every grain may read as equal there
    // until its page is written again, in the slot a read back prefers.
    for (auto& w : h.durable) w = ~uint64_t{0};
    for (uint64_t page = 0; page < h.pages.size(); ++page) {
      h.pages[page].write_seq = 1u << 31;
      h.dirty_pages.insert(page);
    }
  }
  std::vector<IoRequestPtr> waiting;
  waiting.swap(h.load_waiting);
  for (auto& r : waiting) resume(std::move(r));
}

}  // namespace sve

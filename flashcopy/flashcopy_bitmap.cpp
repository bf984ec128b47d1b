// The copied-grain bitmap on the back end (model/fc_bitmap_geometry.hpp):
// pages written as bits are set, each in the slot its last write did not
// use, and read back by the node that executes the source after a takeover
// or a restart.
//
// The rule that keeps a target exact through a crash: a grain's bit is
// durable before any write may change the grain in the source (the target
// would then read it from the source) or in the target (a redo of the copy
// would undo it). A grain copied whose bit was not durable yet is copied
// again after the crash, from a source that nothing changed there.
//
// Late writes. A node whose lease ran out may still have a page write in
// its kernel's device queue (the back end refuses only the ones it is
// given later), and so may a core the mapping's home moved away from: it
// can land after another facility read the bitmap back, in either slot,
// and then hide a later version of the page (the reader takes the slot
// with the latest write). So a facility that read a mapping's bitmap or
// history back writes each version of a page to both slots, one after the
// other, and counts it durable only once both are written: a late write
// overwrites one slot at most, the other holds the latest version (with
// the later sequence: a late write carries at most the one after the last
// that landed, our first write's), and a late write of another start or
// kind is no valid slot to the reader. (Not covered: a write still in a
// queue after two takeovers, or one that lands on one slot while the other
// is torn by a crash.)
#include <cerrno>
#include <cstring>

#include "flashcopy/flashcopy_facility.hpp"
#include "flashcopy/flashcopy_map.hpp"
#include "util/crc.hpp"

namespace sve {
namespace {

constexpr uint32_t kPageMagic = 0x42465653;  // "SVFB"
constexpr uint16_t kPageVersion = 1;

// The 32-byte header of a page slot.
struct PageHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t kind;  // FcPageKind (0 in pages written before it was named)
  uint32_t mapping;
  uint32_t page;
  uint64_t start_seq;
  uint32_t write_seq;
  uint32_t crc;  // CRC-32C of the slot with this field 0
};
static_assert(sizeof(PageHeader) == kFcPageHeaderBytes);

}  // namespace

uint64_t fc_page_words(uint64_t grains, uint64_t page) {
  uint64_t first = page * kFcGrainsPerPage;
  uint64_t count = std::min<uint64_t>(kFcGrainsPerPage, grains - first);
  return (count + 63) / 64;
}

BufferRef fc_encode_page(const FcPageId& id, uint32_t write_seq,
                         const std::vector<uint64_t>& words) {
  BufferRef buffer = Buffer::allocate(kFcPageBytes);
  char* bytes = buffer->data();
  std::memset(bytes, 0, kFcPageBytes);
  PageHeader h{kPageMagic, kPageVersion, static_cast<uint16_t>(id.kind), id.mapping,
               static_cast<uint32_t>(id.page), id.start_seq, write_seq, 0};
  std::memcpy(bytes + kFcPageHeaderBytes, words.data(), words.size() * 8);
  std::memcpy(bytes, &h, sizeof h);
  h.crc = crc32c(bytes, kFcPageBytes);
  std::memcpy(bytes, &h, sizeof h);
  return buffer;
}

int64_t fc_decode_page(const Buffer& slots, const FcPageId& id, uint64_t grains,
                       uint64_t* bits, uint64_t plane) {
  std::vector<char> slot(kFcPageBytes);
  int best = -1;
  uint32_t best_seq = 0;
  for (int s = 0; s < 2; ++s) {
    slots.copy_out(plane + (id.page * 2 + s) * kFcPageBytes, kFcPageBytes, slot.data());
    PageHeader h;
    std::memcpy(&h, slot.data(), sizeof h);
    uint32_t crc = h.crc;
    h.crc = 0;
    std::memcpy(slot.data(), &h, sizeof h);
    if (h.magic != kPageMagic || h.version != kPageVersion ||
        h.kind != static_cast<uint16_t>(id.kind) || h.mapping != id.mapping ||
        h.page != id.page || h.start_seq != id.start_seq ||
        crc32c(slot.data(), kFcPageBytes) != crc)
      continue;
    if (best < 0 || h.write_seq > best_seq) {
      best = s;
      best_seq = h.write_seq;
    }
  }
  if (best < 0) return -1;
  slots.copy_out(plane + (id.page * 2 + best) * kFcPageBytes + kFcPageHeaderBytes,
                 fc_page_words(grains, id.page) * 8, bits + id.page * kFcGrainsPerPage / 64);
  return best_seq;
}

struct FlashCopyBitmapSteps {
  using Map = FlashCopyFacility::Map;

  struct PageWrite final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    uint64_t page;
    bool durable;                 // written with FUA
    FcPageKind kind;              // copied, or changed (the second plane)
    bool other_slot_next;         // written twice: the other slot's write is next
    std::vector<uint64_t> words;  // the bits written
    PageWrite(const Map& m, uint64_t p, bool d, FcPageKind k)
        : mapping(m.layout.id), incarnation(m.incarnation), page(p), durable(d), kind(k),
          other_slot_next(m.twice) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      Map* m = f.find_map(mapping, incarnation);
      int status = child.status;
      if (m && !status && other_slot_next) {
        other_slot_next = false;
        Map::Page& p = kind == FcPageKind::changed ? m->changed_pages[page] : m->pages[page];
        f.submit_page(*m, page, ++p.write_seq, this);
        return;
      }
      if (m) f.page_written(*m, page, words, status, durable, kind);
      delete this;
    }
  };

  struct Load final : FlashCopyFacility::Step {
    uint32_t mapping;
    uint64_t incarnation;
    Load(const Map& m) : mapping(m.layout.id), incarnation(m.incarnation) {}
    void done(FlashCopyFacility& f, IoRequest& child) override {
      Map* m = f.find_map(mapping, incarnation);
      if (m) f.bitmap_loaded(*m, *child.buffer, child.status);
      delete this;
    }
  };
};

namespace {
bool bit_set(const std::vector<uint64_t>& bits, uint64_t g) {
  return g / 64 < bits.size() && ((bits[g / 64] >> (g % 64)) & 1);
}
}  // namespace

// A write over grains copied whose bits are not durable yet waits for
// their pages: true if it does.
bool FlashCopyFacility::wait_durable(Map& m, IoRequest& request, IoRequestPtr& hold) {
  if (!m.persisted() || request.length == 0) return false;
  const uint64_t G = m.grain_bytes();
  uint64_t first = request.offset / G, last = (request.offset + request.length - 1) / G;
  for (uint64_t g = first; g <= last && g < m.grains; ++g) {
    if (!m.copied_grain(g) || m.durable_grain(g)) continue;
    uint64_t page = g / kFcGrainsPerPage;
    ++stats_.bitmap_waits;
    m.pages[page].waiting.push_back(std::move(hold));
    write_page(m, page, true);
    return true;
  }
  return false;
}

// An incremental mapping's write during its start: its grains are noted
// written (m.changed) and it waits until the second plane says so, else a
// crash could leave a history that claims them equal.
bool FlashCopyFacility::wait_changes_durable(Map& m, IoRequest& request, IoRequestPtr& hold) {
  if (!m.changes_persisted() || request.length == 0) return false;
  const uint64_t G = m.grain_bytes();
  uint64_t first = request.offset / G, last = (request.offset + request.length - 1) / G;
  for (uint64_t g = first; g <= last && g < m.grains; ++g) {
    if (!bit_set(m.changed, g) || bit_set(m.changed_durable, g)) continue;
    uint64_t page = g / kFcGrainsPerPage;
    ++stats_.bitmap_waits;
    m.changed_pages[page].waiting.push_back(std::move(hold));
    write_page(m, page, true, FcPageKind::changed);
    return true;
  }
  return false;
}

// `durable`: with FUA, for writes that wait; else a plain write, for the
// background copy's bits (they only spare copies after a crash: nothing
// waits for them, and a FUA write costs a flush of the disk's cache).
void FlashCopyFacility::write_page(Map& m, uint64_t page, bool durable, FcPageKind kind) {
  const bool changes = kind == FcPageKind::changed;
  Map::Page& p = changes ? m.changed_pages[page] : m.pages[page];
  if (p.writing) {
    (durable ? p.again_durable : p.again) = true;
    return;
  }
  if (!changes) m.dirty_pages.erase(page);
  p.writing = true;
  p.again = p.again_durable = false;
  auto* step = new FlashCopyBitmapSteps::PageWrite(m, page, durable, kind);
  const std::vector<uint64_t>& bits = changes ? m.changed : m.bits;
  uint64_t first_word = page * kFcGrainsPerPage / 64;
  uint64_t n = fc_page_words(m.grains, page);
  step->words.assign(bits.begin() + first_word, bits.begin() + first_word + n);
  submit_page(m, page, ++p.write_seq, step);
}

void FlashCopyFacility::submit_page(Map& m, uint64_t page, uint32_t write_seq, Step* step) {
  auto* w = static_cast<FlashCopyBitmapSteps::PageWrite*>(step);
  ++stats_.bitmap_writes;
  IoRequestPtr write = make_request();
  write->op = IoOp::write;
  write->flags = w->durable ? io_flags::fua : 0;  // durable when it completes
  write->volume = m.layout.bitmap;
  write->offset = (w->kind == FcPageKind::changed ? fc_changed_plane_offset(m.grains) : 0) +
                  (page * 2 + write_seq % 2) * kFcPageBytes;
  write->length = kFcPageBytes;
  write->buffer = fc_encode_page({m.layout.id, page, m.layout.start_seq, w->kind}, write_seq,
                                 w->words);
  write->client = client_for(m.layout.bitmap);
  write->cookie = reinterpret_cast<uint64_t>(step);
  lower_for(m.layout.bitmap).submit(std::move(write));
}

void FlashCopyFacility::page_written(Map& m, uint64_t page, const std::vector<uint64_t>& words,
                                     int status, bool durable, FcPageKind kind) {
  const bool changes = kind == FcPageKind::changed;
  Map::Page& p = changes ? m.changed_pages[page] : m.pages[page];
  std::vector<uint64_t>& durable_bits = changes ? m.changed_durable : m.durable;
  p.writing = false;
  std::vector<IoRequestPtr> released;
  if (status) {
    // Which grains are copied (or were written) cannot be kept: the target
    // goes offline.
    lose(m, std::string(changes ? "the grains written during its start could not be noted "
                                  "on its bitmap: "
                                : "its bitmap could not be written: ") +
                std::strerror(status));
    released.swap(p.waiting);
  } else if (durable) {
    uint64_t first_word = page * kFcGrainsPerPage / 64;
    for (size_t i = 0; i < words.size(); ++i) durable_bits[first_word + i] |= words[i];
    released.swap(p.waiting);
  }
  // Writes that came to wait during a plain write need a durable one.
  bool again_durable = p.again_durable || !p.waiting.empty();
  bool again = p.again;
  p.again = p.again_durable = false;
  for (auto& r : released) resume(std::move(r));
  if (!m.known || p.writing) return;  // (a write released may have started one)
  if (again_durable)
    write_page(m, page, true, kind);
  else if (again && !changes)
    m.dirty_pages.insert(page);  // at the next tick
}

// At a tick: the bits the background copy set since.
void FlashCopyFacility::flush_dirty(Map& m) {
  if (!m.persisted() || m.loading || !m.known) return;
  std::vector<uint64_t> dirty(m.dirty_pages.begin(), m.dirty_pages.end());
  for (uint64_t page : dirty) write_page(m, page, false);
}

void FlashCopyFacility::load_bitmap(Map& m) {
  m.loading = true;
  ++loading_;
  ++stats_.bitmap_loads;
  auto* step = new FlashCopyBitmapSteps::Load(m);
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = m.layout.bitmap;
  read->offset = 0;
  read->length = fc_bitmap_vdisk_bytes(m.grains, m.changes_persisted());
  read->buffer = Buffer::allocate(read->length);
  read->client = client_for(m.layout.bitmap);
  read->cookie = reinterpret_cast<uint64_t>(step);
  lower_for(m.layout.bitmap).submit(std::move(read));
}

// Each page from the slot of this start with the latest write; a page
// with neither (never written this start, or torn before its first write
// completed) has no grain copied.
void FlashCopyFacility::bitmap_loaded(Map& m, const Buffer& slots, int status) {
  m.loading = false;
  if (status) {
    m.known = false;
    m.why = std::string("its bitmap could not be read back: ") + std::strerror(status);
  } else {
    // Whoever wrote it before may have a write of each page still on its
    // way: pages are written twice from now on.
    m.twice = true;
    read_back_.insert(m.layout.id);
    for (uint64_t page = 0; page < m.pages.size(); ++page) {
      int64_t seq = fc_decode_page(
          slots, {m.layout.id, page, m.layout.start_seq, FcPageKind::copied}, m.grains,
          m.bits.data());
      if (seq >= 0) m.pages[page].write_seq = static_cast<uint32_t>(seq);
    }
    // (Bits past the last grain are not trusted from disk.)
    if (m.grains % 64) m.bits.back() &= (uint64_t{1} << (m.grains % 64)) - 1;
    m.copied = 0;
    for (uint64_t w : m.bits) m.copied += static_cast<uint64_t>(__builtin_popcountll(w));
    m.durable = m.bits;
    if (m.changes_persisted()) {
      // Every grain written since the start is there (its write waited for
      // it): the history this start leaves is whole.
      std::fill(m.changed.begin(), m.changed.end(), 0);
      uint64_t plane = fc_changed_plane_offset(m.grains);
      for (uint64_t page = 0; page < m.changed_pages.size(); ++page) {
        int64_t seq = fc_decode_page(
            slots, {m.layout.id, page, m.layout.start_seq, FcPageKind::changed}, m.grains,
            m.changed.data(), plane);
        if (seq >= 0) m.changed_pages[page].write_seq = static_cast<uint32_t>(seq);
      }
      if (m.grains % 64) m.changed.back() &= (uint64_t{1} << (m.grains % 64)) - 1;
      m.changed_durable = m.changed;
      m.seen_all = true;
    }
    m.known = true;
    m.why.clear();
  }
  // Requests of executing mappings wait until every bitmap is back (a read
  // may go through several mappings).
  if (--loading_ > 0) return;
  std::deque<IoRequestPtr> waiting;
  waiting.swap(load_waiting_);
  for (auto& r : waiting) resume(std::move(r));
}

}  // namespace sve

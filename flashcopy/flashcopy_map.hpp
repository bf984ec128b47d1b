#pragma once
// flashcopy/ inside: a copying mapping as its source's core holds it (Map),
// a host read cut into pieces (Job), and what a request sent below answers
// to (Step). Private to flashcopy/.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "flashcopy/flashcopy_facility.hpp"
#include "model/fc_bitmap_geometry.hpp"

namespace sve {

// Tags in the low bits of a cookie (a Step's address has them clear).
inline constexpr uint64_t kFcPassedWrite = 1;  // a write passed down, counted
inline constexpr uint64_t kFcPassedRead = 2;   // a read passed to another core
inline constexpr uint64_t kFcHome = 3;         // a target request sent to its source's core
inline constexpr uint64_t kFcTagMask = 3;

struct FlashCopyFacility::Map {
  CopyLayout layout;
  uint64_t incarnation = 0;  // tells a step of a dropped map from this one's
  uint64_t grains = 0;
  std::vector<uint64_t> bits;  // copied grains of this start
  uint64_t copied = 0;
  std::vector<uint64_t> changed;  // incremental: grains written (source or target) since it
  // this core saw every write since the start (it paused it), or read back
  // the grains written (changes_on_bitmap)
  bool seen_all = false;
  bool known = false;          // the bits are this start's (else the target is offline)
  std::string why;             // why not
  // Grains being copied, and the requests waiting for them.
  std::unordered_map<uint64_t, std::vector<IoRequestPtr>> changing;
  // Copied grains still held until target reads sent to the source are back.
  std::unordered_set<uint64_t> finishing;
  std::unordered_map<uint64_t, uint32_t> redirected;  // grain -> such reads in flight
  uint64_t cursor = 0;      // the background copy's next grain
  double budget = 0;        // bytes the background copy may copy now
  uint32_t background = 0;  // its copies in flight
  // The bitmap on the back end (layout.bitmap; model/fc_bitmap_geometry.hpp).
  // A grain's bit is durable there before any write may change the grain
  // in source or target: until then such a write waits for its page.
  std::vector<uint64_t> durable;
  struct Page {
    uint32_t write_seq = 0;  // of its last write (slot write_seq % 2)
    bool writing = false;    // (both halves of a write twice)
    bool again = false;          // more bits set while it was written
    bool again_durable = false;  // and a write waits for them
    std::vector<IoRequestPtr> waiting;
  };
  std::vector<Page> pages;
  std::unordered_set<uint64_t> dirty_pages;  // bits set that are not durable
  // Incremental, layout.changes_on_bitmap: the grains written since the
  // start on the bitmap vdisk's second plane, the same way (a grain's bit
  // durable there before a write may change it; no background bits).
  std::vector<uint64_t> changed_durable;
  std::vector<Page> changed_pages;
  bool loading = false;  // read back from the back end (a takeover, a restart)
  // Its pages are written to both slots in turn, durable once both are:
  // its bitmap was read back here (flashcopy_bitmap.cpp, "late writes").
  bool twice = false;
  // Stopping: copies made for the mappings that read through its target.
  uint64_t clean_cursor = 0;  // grains before it need nothing more
  double clean_budget = 0;
  uint32_t cleaning = 0;  // in flight

  uint64_t grain_bytes() const { return layout.grain_bytes; }
  bool copied_grain(uint64_t g) const { return (bits[g / 64] >> (g % 64)) & 1; }
  void set_copied(uint64_t g) {
    if (copied_grain(g)) return;
    bits[g / 64] |= uint64_t{1} << (g % 64);
    ++copied;
    if (!pages.empty()) dirty_pages.insert(g / kFcGrainsPerPage);
  }
  bool persisted() const { return !pages.empty(); }
  bool changes_persisted() const { return !changed_pages.empty(); }
  bool durable_grain(uint64_t g) const {
    return !persisted() || ((durable[g / 64] >> (g % 64)) & 1);
  }
  uint64_t grain_length(uint64_t g) const {
    return std::min<uint64_t>(grain_bytes(), layout.size_bytes - g * grain_bytes());
  }
};

// The bitmap vdisk's pages (model/fc_bitmap_geometry.hpp): a copying
// mapping's copied grains, or an incremental history's grains still equal.
// (`changed`: an incremental mapping's grains written during its start,
// on the second plane.)
enum class FcPageKind : uint16_t { copied = 0, history = 1, changed = 2 };
struct FcPageId {
  uint32_t mapping = 0;
  uint64_t page = 0;
  uint64_t start_seq = 0;
  FcPageKind kind = FcPageKind::copied;
};
uint64_t fc_page_words(uint64_t grains, uint64_t page);
// A page slot with its header and CRC.
BufferRef fc_encode_page(const FcPageId& id, uint32_t write_seq,
                         const std::vector<uint64_t>& words);
// From both slots of page id.page in `slots` (the bitmap vdisk's plane that
// starts at byte `plane`), the valid one of this mapping, start and kind
// with the latest write: its bits into `bits` at the page's place; its
// write sequence, or -1 if neither.
int64_t fc_decode_page(const Buffer& slots, const FcPageId& id, uint64_t grains,
                       uint64_t* bits, uint64_t plane = 0);

// Grains [offset, offset+length) touches set in `bits` (clipped to them).
inline void mark_grains(std::vector<uint64_t>& bits, uint64_t grain_bytes, uint64_t offset,
                        uint64_t length) {
  if (length == 0 || grain_bytes == 0) return;
  uint64_t last = (offset + length - 1) / grain_bytes;
  for (uint64_t g = offset / grain_bytes; g <= last && g / 64 < bits.size(); ++g)
    bits[g / 64] |= uint64_t{1} << (g % 64);
}

// An incremental mapping between two starts: the grains the start it
// describes copied and nobody wrote since, on either vdisk. Kept on the
// back end too (flashcopy_history.cpp), in pages of their own kind in the
// mapping's bitmap vdisk: a grain's bit is cleared there, durably, before a
// write may change the grain, so a history read back after a crash or a
// takeover claims no grain that changed.
struct FlashCopyFacility::History {
  uint32_t mapping = 0;
  uint64_t incarnation = 0;  // tells a step of a dropped history from this one's
  uint64_t start_seq = 0;
  uint64_t grain_bytes = 0;
  uint64_t grains = 0;
  std::vector<uint64_t> equal;
  uint32_t bitmap = 0;            // its vdisk (0: in memory only)
  // Its vdisk has the start's grains written (changes_on_bitmap): until a
  // page of the history is written, the start's pages say what it holds.
  bool changes = false;
  std::vector<uint64_t> durable;  // bits the back end may hold (a crash could find)
  struct Page {
    uint32_t write_seq = 0;
    bool writing = false;
    bool again = false;              // changed while it was written
    std::vector<uint64_t> inflight;  // the bits being written
    std::vector<IoRequestPtr> waiting;
  };
  std::vector<Page> pages;
  std::unordered_set<uint64_t> dirty_pages;
  bool loading = false;  // read back from the back end
  bool twice = false;    // pages written to both slots, as a Map's
  std::vector<IoRequestPtr> load_waiting;
  static bool bit(const std::vector<uint64_t>& bits, uint64_t g) {
    return g / 64 < bits.size() && ((bits[g / 64] >> (g % 64)) & 1);
  }
};

// A mapping whose uncopied grains [first, last] a read went through to its
// source: a copy of them holds source writes until the read is back.
struct FlashCopyFacility::Redirect {
  uint32_t mapping = 0;
  uint64_t incarnation = 0;
  uint64_t first = 0, last = 0;
};

// A piece of a read as planned through the mappings: [a, b) of `vdisk`
// as it is on the back end.
struct FlashCopyFacility::Span {
  uint32_t vdisk = 0;
  uint64_t a = 0, b = 0;
  std::vector<Redirect> via;
};

struct FlashCopyFacility::Step {
  virtual ~Step() = default;
  virtual void done(FlashCopyFacility& f, IoRequest& child) = 0;
};

// A host read of a target cut into runs read from the target (grains
// copied) and from the source (not yet).
struct FlashCopyFacility::Job {
  IoRequestPtr request;
  uint32_t pending = 1;  // pieces in flight, plus one while they are issued
  int status = 0;
};

}  // namespace sve

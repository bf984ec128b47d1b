#pragma once
// A thin vdisk's map: virtual grain -> physical grain in the vdisk's real
// capacity (its extents), the free grains, and the map's on-disk form.
// Plain C++ with no I/O: the thin facility (thin/thin_facility.hpp) reads
// and writes the pages; unit tests drive this directly (docs/thin.md).
//
// On disk, at the start of the real capacity: map page i lives in two 4 KiB
// slots (2i and 2i+1). A page is written whole, always into the slot that
// does not hold its newest valid copy, with a sequence number one higher and
// a CRC-32C; recovery takes, per page, the valid slot with the higher
// sequence. A torn write spoils only the slot being written, whose content
// was not acknowledged, and leaves the other one. Physical grains follow
// the map's slots, from `meta_bytes()` on.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/thin_geometry.hpp"

namespace sve {

// What a slot holds, once checked.
struct DecodedPage {
  bool valid = false;
  uint64_t seq = 0;
};
// Checks a slot's magic, vdisk, page number and CRC; on success copies its
// entries into `entries` (kThinEntriesPerPage of them).
DecodedPage decode_page(const char* slot, uint32_t vdisk, uint32_t page, uint32_t* entries);
// Writes a page image: header and `entries` (those past `count` are 0).
void encode_page(char* slot, uint32_t vdisk, uint32_t page, uint64_t seq,
                 const uint32_t* entries, uint32_t count);

// What `check` found.
struct ThinCheck {
  uint64_t mapped = 0;         // virtual grains with a physical grain
  uint64_t mapped_twice = 0;   // physical grains named by more than one entry
  uint64_t out_of_range = 0;   // entries naming a grain past the real capacity
  uint64_t leaked = 0;         // grains marked used that no entry names (nor a write)
  uint64_t lost = 0;           // grains an entry names that are marked free
  uint64_t torn_slots = 0;     // slots that failed their check (a torn page)
  uint64_t differs = 0;        // entries memory held that disk does not (a check)
  bool clean() const { return !mapped_twice && !out_of_range && !leaked && !lost && !differs; }
  std::string describe() const;
};

class ThinMap {
 public:
  ThinMap(uint32_t vdisk, ThinGeometry geometry, uint64_t real_bytes);

  const ThinGeometry& geometry() const { return geo_; }
  uint32_t vdisk() const { return vdisk_; }

  // ---- recovery: each page's two slots, then finish.
  void load_page(uint32_t page, const char* slot0, const char* slot1);
  // Rebuilds the free grains from the entries. Returns what it found: an
  // entry out of range or a grain named twice is dropped from the map (the
  // data cannot be trusted) and counted.
  ThinCheck finish_load();

  // ---- the I/O path
  // The physical grain of virtual grain `v`, or nullopt.
  std::optional<uint32_t> lookup(uint64_t v) const {
    uint32_t e = entries_[v];
    if (e == 0) return std::nullopt;
    return e - 1;
  }
  // A free physical grain, now marked used; nullopt if there is none.
  std::optional<uint32_t> allocate();
  // Gives a grain back (its unmapping is durable, no I/O uses it).
  void release(uint32_t pgrain);
  // Changes an entry in memory (the page must then be written).
  void set(uint64_t v, std::optional<uint32_t> pgrain);
  // More real capacity (the vdisk got extents).
  void grow(uint64_t real_bytes);

  // ---- writing a page: the slot it goes to and its image (the entries as
  // they are in memory now). `written` after the write is durable.
  struct PageWrite {
    uint32_t page = 0;
    unsigned slot = 0;
    uint64_t seq = 0;
  };
  PageWrite prepare_write(uint32_t page, char* image) const;
  // The same in two steps, for a write whose entries are taken before a
  // flush and whose slot is chosen after (when the previous write of the
  // page is durable): the entries as memory holds them now, then the
  // header, slot and sequence.
  void snapshot(uint32_t page, char* image) const;
  PageWrite seal(uint32_t page, char* image) const;
  void written(const PageWrite& w);

  // ---- figures
  uint64_t mapped_grains() const { return mapped_; }
  uint32_t free_grains() const { return free_; }
  uint32_t data_grains() const { return static_cast<uint32_t>(used_.size()); }
  // Compares the map in memory with the used grains: `pending` are grains
  // allocated for writes whose entries are not set yet.
  ThinCheck check(const std::vector<uint32_t>& pending) const;
  // The entries as a page of `page` holds them (for comparing with disk).
  const uint32_t* page_entries(uint32_t page) const {
    return entries_.data() + uint64_t{page} * kThinEntriesPerPage;
  }
  uint32_t page_entry_count(uint32_t page) const;

 private:
  uint32_t vdisk_;
  ThinGeometry geo_;
  std::vector<uint32_t> entries_;  // virtual grain -> physical grain + 1 (0: none)
  std::vector<bool> used_;         // physical grain -> in use
  struct PageState {
    uint64_t seq = 0;   // of its newest durable copy (0: none)
    uint8_t slot = 1;   // where that copy is (the next write goes to the other)
  };
  std::vector<PageState> pages_;
  uint64_t mapped_ = 0;
  uint32_t free_ = 0;
  uint32_t hint_ = 0;  // where the search for a free grain starts
  uint64_t torn_ = 0;
};

}  // namespace sve

#include "thin/thin_map.hpp"

#include <cassert>
#include <cstring>

#include "util/crc.hpp"

namespace sve {

namespace {

// The header, little-endian as the machine is (the map stays on the
// cluster's own disks).
struct PageHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  uint32_t vdisk;
  uint32_t page;
  uint64_t seq;
  uint32_t crc;  // over the whole slot with this field 0
  uint32_t pad;
};
static_assert(sizeof(PageHeader) == kThinPageHeader);

uint32_t page_crc(const char* slot) {
  // The CRC over the slot with its crc field taken as 0.
  char copy[kThinPageBytes];
  std::memcpy(copy, slot, kThinPageBytes);
  reinterpret_cast<PageHeader*>(copy)->crc = 0;
  return crc32c(copy, kThinPageBytes);
}

}  // namespace

DecodedPage decode_page(const char* slot, uint32_t vdisk, uint32_t page, uint32_t* entries) {
  PageHeader h;
  std::memcpy(&h, slot, sizeof h);
  if (h.magic != kThinMagic || h.version != 1 || h.vdisk != vdisk || h.page != page ||
      h.seq == 0 || h.crc != page_crc(slot))
    return {};
  std::memcpy(entries, slot + kThinPageHeader, kThinEntriesPerPage * 4);
  return {true, h.seq};
}

void encode_page(char* slot, uint32_t vdisk, uint32_t page, uint64_t seq,
                 const uint32_t* entries, uint32_t count) {
  std::memset(slot, 0, kThinPageBytes);
  PageHeader h{};
  h.magic = kThinMagic;
  h.version = 1;
  h.vdisk = vdisk;
  h.page = page;
  h.seq = seq;
  std::memcpy(slot, &h, sizeof h);
  std::memcpy(slot + kThinPageHeader, entries, uint64_t{count} * 4);
  uint32_t crc = page_crc(slot);
  std::memcpy(slot + offsetof(PageHeader, crc), &crc, 4);
}

std::string ThinCheck::describe() const {
  if (clean() && !torn_slots)
    return "clean: " + std::to_string(mapped) + " grains mapped, none twice, none leaked";
  std::string out = std::to_string(mapped) + " grains mapped";
  auto add = [&](uint64_t n, const char* what) {
    if (n) out += ", " + std::to_string(n) + " " + what;
  };
  add(mapped_twice, "mapped twice");
  add(out_of_range, "past the real capacity");
  add(leaked, "leaked (used, mapped by nothing)");
  add(lost, "mapped but marked free");
  add(differs, "entries in memory not on disk");
  add(torn_slots, "map slots torn (the other copy was used)");
  return out;
}

ThinMap::ThinMap(uint32_t vdisk, ThinGeometry geometry, uint64_t real_bytes)
    : vdisk_(vdisk), geo_(geometry) {
  entries_.assign(uint64_t{geo_.pages()} * kThinEntriesPerPage, 0);
  pages_.resize(geo_.pages());
  used_.assign(geo_.data_grains(real_bytes), false);
  free_ = static_cast<uint32_t>(used_.size());
}

uint32_t ThinMap::page_entry_count(uint32_t page) const {
  uint64_t first = uint64_t{page} * kThinEntriesPerPage;
  uint64_t n = geo_.virtual_grains() - first;
  return static_cast<uint32_t>(n < kThinEntriesPerPage ? n : kThinEntriesPerPage);
}

void ThinMap::load_page(uint32_t page, const char* slot0, const char* slot1) {
  uint32_t e0[kThinEntriesPerPage], e1[kThinEntriesPerPage];
  DecodedPage d0 = decode_page(slot0, vdisk_, page, e0);
  DecodedPage d1 = decode_page(slot1, vdisk_, page, e1);
  // A slot never written is all zeros; one with our magic that fails its
  // check was torn (or overwritten by something else).
  auto torn = [](const char* slot, const DecodedPage& d) {
    uint32_t magic;
    std::memcpy(&magic, slot, 4);
    return !d.valid && magic == kThinMagic;
  };
  torn_ += torn(slot0, d0) + torn(slot1, d1);
  PageState& st = pages_[page];
  uint32_t* into = entries_.data() + uint64_t{page} * kThinEntriesPerPage;
  uint32_t n = page_entry_count(page);
  if (!d0.valid && !d1.valid) {  // never written: all unmapped
    std::memset(into, 0, kThinEntriesPerPage * 4);
    st = {};
    return;
  }
  bool take1 = d1.valid && (!d0.valid || d1.seq > d0.seq);
  std::memcpy(into, take1 ? e1 : e0, uint64_t{n} * 4);
  st.seq = take1 ? d1.seq : d0.seq;
  st.slot = take1 ? 1 : 0;
}

ThinCheck ThinMap::finish_load() {
  ThinCheck found;
  found.torn_slots = torn_;
  std::fill(used_.begin(), used_.end(), false);
  mapped_ = 0;
  for (uint64_t v = 0; v < geo_.virtual_grains(); ++v) {
    uint32_t e = entries_[v];
    if (e == 0) continue;
    uint32_t p = e - 1;
    if (p >= used_.size()) {
      ++found.out_of_range;
      entries_[v] = 0;
      continue;
    }
    if (used_[p]) {
      ++found.mapped_twice;
      entries_[v] = 0;
      continue;
    }
    used_[p] = true;
    ++mapped_;
  }
  found.mapped = mapped_;
  free_ = static_cast<uint32_t>(used_.size() - mapped_);
  hint_ = 0;
  return found;
}

std::optional<uint32_t> ThinMap::allocate() {
  if (free_ == 0) return std::nullopt;
  uint32_t n = static_cast<uint32_t>(used_.size());
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t p = hint_ + i < n ? hint_ + i : hint_ + i - n;
    if (!used_[p]) {
      used_[p] = true;
      --free_;
      hint_ = p + 1 < n ? p + 1 : 0;
      return p;
    }
  }
  assert(false && "free count says a grain is free");
  return std::nullopt;
}

void ThinMap::release(uint32_t pgrain) {
  assert(pgrain < used_.size() && used_[pgrain]);
  used_[pgrain] = false;
  ++free_;
  if (pgrain < hint_) hint_ = pgrain;
}

void ThinMap::set(uint64_t v, std::optional<uint32_t> pgrain) {
  assert(v < geo_.virtual_grains());
  uint32_t before = entries_[v];
  uint32_t after = pgrain ? *pgrain + 1 : 0;
  if (before == 0 && after != 0) ++mapped_;
  if (before != 0 && after == 0) --mapped_;
  entries_[v] = after;
}

void ThinMap::grow(uint64_t real_bytes) {
  uint32_t n = geo_.data_grains(real_bytes);
  if (n <= used_.size()) return;
  free_ += static_cast<uint32_t>(n - used_.size());
  used_.resize(n, false);
}

ThinMap::PageWrite ThinMap::prepare_write(uint32_t page, char* image) const {
  snapshot(page, image);
  return seal(page, image);
}

void ThinMap::snapshot(uint32_t page, char* image) const {
  std::memset(image, 0, kThinPageBytes);
  std::memcpy(image + kThinPageHeader, page_entries(page), uint64_t{page_entry_count(page)} * 4);
}

ThinMap::PageWrite ThinMap::seal(uint32_t page, char* image) const {
  const PageState& st = pages_[page];
  PageWrite w{page, st.slot ^ 1u, st.seq + 1};
  uint32_t entries[kThinEntriesPerPage];
  std::memcpy(entries, image + kThinPageHeader, sizeof entries);
  encode_page(image, vdisk_, page, w.seq, entries, page_entry_count(page));
  return w;
}

void ThinMap::written(const PageWrite& w) {
  PageState& st = pages_[w.page];
  if (w.seq > st.seq) {
    st.seq = w.seq;
    st.slot = static_cast<uint8_t>(w.slot);
  }
}

ThinCheck ThinMap::check(const std::vector<uint32_t>& pending) const {
  ThinCheck found;
  std::vector<uint8_t> named(used_.size(), 0);
  for (uint64_t v = 0; v < geo_.virtual_grains(); ++v) {
    uint32_t e = entries_[v];
    if (e == 0) continue;
    ++found.mapped;
    uint32_t p = e - 1;
    if (p >= used_.size()) {
      ++found.out_of_range;
      continue;
    }
    if (named[p]) ++found.mapped_twice;
    named[p] = 1;
  }
  for (uint32_t p : pending)
    if (p < named.size()) {
      if (named[p]) ++found.mapped_twice;
      named[p] = 1;
    }
  for (size_t p = 0; p < used_.size(); ++p) {
    if (used_[p] && !named[p]) ++found.leaked;
    if (!used_[p] && named[p]) ++found.lost;
  }
  return found;
}

}  // namespace sve

#pragma once
// The battery-backed memory of the paper's nodes, emulated: a file in the
// data directory mapped MAP_SHARED. What a process writes there is in the
// kernel's page cache the moment the store completes, so it survives the
// process's death (SIGKILL, a crash) as the battery-backed memory survives a
// power cut; a machine crash loses it, as a dead battery would (msync()
// makes it durable across that too, at a price the cache decides to pay).
//
// The area holds fixed-size slots. Each carries one cached block: whose it
// is (this node's dirty data or a mirror copy of the partner's), its vdisk,
// offset and length, a sequence number, and checksums of the header and the
// data. The header is written last, so recovery after a crash tells a
// complete entry from a torn one, and of two entries for one block keeps the
// newer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace sve {

struct NvramEntry {
  uint32_t slot = 0;
  uint32_t origin = 0;  // the node whose write this is (this node, or the partner)
  uint32_t vdisk = 0;
  uint64_t offset = 0;  // bytes into the vdisk
  uint32_t length = 0;  // bytes of data, up to slot_bytes()
  uint64_t seq = 0;     // newer writes of a block carry higher numbers
  uint64_t epoch = 0;   // the cache epoch of its I/O group when it was written
};

class Nvram {
 public:
  // Opens (or creates, zeroed) `path` with room for `slots` slots of
  // `slot_bytes` data each. An existing area of another geometry is refused
  // rather than reinterpreted.
  static Result<std::unique_ptr<Nvram>> open(const std::string& path, uint32_t slots,
                                             uint32_t slot_bytes = 4096);
  ~Nvram();
  Nvram(const Nvram&) = delete;
  Nvram& operator=(const Nvram&) = delete;

  uint32_t slots() const { return slots_; }
  uint32_t slot_bytes() const { return slot_bytes_; }
  uint32_t free_slots() const { return static_cast<uint32_t>(free_.size()); }
  // Whether open() found no area and made a new, empty one: whatever this
  // node held before (if it ever ran) is lost, and the cluster must not
  // count on it (model/ownership.hpp, RoutePolicy::untrusted_epoch).
  bool created() const { return created_; }

  // Every complete entry found when the area was opened, newest per block
  // (older copies and torn entries are freed). Their slots stay in use.
  const std::vector<NvramEntry>& recovered() const { return recovered_; }

  // A free slot, or -1 when the area is full.
  int64_t allocate();
  // Stores a block in `slot`: data first, then the header that makes it
  // count. `length` must be at most slot_bytes().
  Status store(uint32_t slot, const NvramEntry& entry, const void* data);
  // The same in two steps, for a writer that copies its data straight into
  // the slot (from a buffer in pieces): the slot's memory to write, then
  // the header over what it holds.
  void* writable(uint32_t slot) { return slot_data(slot); }
  Status commit(uint32_t slot, const NvramEntry& entry);
  // The data of a stored entry (valid until the slot is released).
  const void* data(uint32_t slot) const;
  // Forgets the entry in `slot` (destaged, or superseded) and frees it.
  void release(uint32_t slot);
  // Forgets the entry (recovery will not find it) but keeps the slot and
  // its data for whoever still reads them; release() frees it later.
  void invalidate(uint32_t slot);
  // Makes everything stored so far survive a machine crash too.
  Status flush();
  // Brings every page of the area into memory, writable, now rather than
  // at each page's first store (a fault apiece, costly in a VM). For an
  // area in memory (tmpfs): on a disk's file system it would also mark the
  // whole area for writing back.
  Status prefault();

  // A number its writer keeps above every sequence number it has used, in
  // the area (so it outlives the process, as the entries do): a restarted
  // writer starts there, not just above the entries it finds, because a
  // partner may still hold copies of versions this area freed (destaged)
  // with higher numbers. 0 in an area that never had one.
  uint64_t sequence_floor() const;
  void set_sequence_floor(uint64_t floor);

 private:
  Nvram() = default;
  void recover();
  struct Header;
  Header* header(uint32_t slot) const;
  uint8_t* slot_data(uint32_t slot) const;

  std::string path_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
  uint32_t slots_ = 0;
  uint32_t slot_bytes_ = 0;
  bool created_ = false;
  std::vector<uint32_t> free_;
  std::vector<NvramEntry> recovered_;
};

// The battery dump of the paper's nodes: whatever a dead process left in
// the NVRAM files of `dir` (nvram-*: file-backed shared mappings, still in
// the page cache) is made durable before another process maps them.
// Returns how many files were saved.
int save_nvram_files(const std::string& dir);

}  // namespace sve

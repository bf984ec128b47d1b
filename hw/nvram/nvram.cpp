#include "hw/nvram/nvram.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <tuple>

#include "util/crc.hpp"
#include "util/durable.hpp"
#include "util/fd.hpp"

namespace sve {
namespace {

constexpr char kMagic[8] = {'S', 'V', 'E', 'N', 'V', 'R', 'A', 'M'};
constexpr uint32_t kVersion = 2;
constexpr uint32_t kEntryMagic = 0x454e5452;  // "ENTR"
constexpr size_t kSuperBytes = 4096;
// Where the sequence floor lives in the superblock's page (past the fields
// the superblock's CRC covers; an 8-byte store there is atomic).
constexpr size_t kFloorOffset = 512;

struct Super {
  char magic[8];
  uint32_t version;
  uint32_t slots;
  uint32_t slot_bytes;
  uint32_t crc;  // over the fields above
};

}  // namespace

// 64 bytes per slot, in a table before the data. `crc` covers everything
// before it, the data's checksum included, so a header that names data
// which never fully landed does not check out.
struct Nvram::Header {
  uint32_t magic;  // kEntryMagic: in use; 0: free
  uint32_t origin;
  uint32_t vdisk;
  uint32_t length;
  uint64_t offset;
  uint64_t seq;
  uint64_t epoch;
  uint32_t data_crc;
  uint8_t reserved[16];
  uint32_t crc;
};

Result<std::unique_ptr<Nvram>> Nvram::open(const std::string& path, uint32_t slots,
                                           uint32_t slot_bytes) {
  if (slots == 0 || slot_bytes == 0 || slot_bytes % 512)
    return make_error("nvram: slots and a slot size that is a multiple of 512 are needed",
                      EINVAL);
  std::unique_ptr<Nvram> nv(new Nvram());
  nv->path_ = path;
  nv->slots_ = slots;
  nv->slot_bytes_ = slot_bytes;
  static_assert(sizeof(Header) == 64, "a slot header is 64 bytes on disk");
  size_t table = (size_t{slots} * sizeof(Header) + 4095) / 4096 * 4096;
  nv->bytes_ = kSuperBytes + table + size_t{slots} * slot_bytes;
  nv->fd_ = durable::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (nv->fd_ < 0) return sys_error("nvram: cannot open " + path);
  struct stat st {};
  if (::fstat(nv->fd_, &st) != 0) return sys_error("nvram: cannot stat " + path);
  bool fresh = st.st_size == 0;
  nv->created_ = fresh;
  if (fresh && ::ftruncate(nv->fd_, static_cast<off_t>(nv->bytes_)) != 0)
    return sys_error("nvram: cannot size " + path);
  if (!fresh && static_cast<size_t>(st.st_size) != nv->bytes_)
    return make_error("nvram: " + path + " holds an area of another size (" +
                          std::to_string(st.st_size) + " bytes); refusing to reinterpret it",
                      EINVAL);
  void* p = ::mmap(nullptr, nv->bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, nv->fd_, 0);
  if (p == MAP_FAILED) return sys_error("nvram: cannot map " + path);
  nv->base_ = static_cast<uint8_t*>(p);
  auto* super = reinterpret_cast<Super*>(nv->base_);
  if (fresh) {
    Super s{};
    std::memcpy(s.magic, kMagic, sizeof kMagic);
    s.version = kVersion;
    s.slots = slots;
    s.slot_bytes = slot_bytes;
    s.crc = crc32c(&s, offsetof(Super, crc));
    *super = s;
    // A new area is made durable, name and superblock, before it is used:
    // after a power cut the next start must find it whole, not a file
    // without its superblock that it would refuse.
    if (durable::msync(nv->base_, kSuperBytes, nv->fd_) != 0)
      return sys_error("nvram: cannot sync " + path);
    if (durable::fsync_dir(std::filesystem::path(path).parent_path().string()) != 0)
      return sys_error("nvram: cannot sync the directory of " + path);
  } else if (std::memcmp(super->magic, kMagic, sizeof kMagic) != 0 ||
             super->crc != crc32c(super, offsetof(Super, crc)) || super->version != kVersion ||
             super->slots != slots || super->slot_bytes != slot_bytes) {
    return make_error("nvram: " + path +
                          " is not an area of this geometry; refusing to reinterpret it",
                      EINVAL);
  }
  nv->recover();
  return nv;
}

uint64_t Nvram::sequence_floor() const {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(base_ + kFloorOffset), __ATOMIC_RELAXED);
}

void Nvram::set_sequence_floor(uint64_t floor) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(base_ + kFloorOffset), floor, __ATOMIC_RELAXED);
}

Nvram::~Nvram() {
  if (base_) ::munmap(base_, bytes_);
  if (fd_ >= 0) ::close(fd_);
}

Nvram::Header* Nvram::header(uint32_t slot) const {
  return reinterpret_cast<Header*>(base_ + kSuperBytes) + slot;
}

uint8_t* Nvram::slot_data(uint32_t slot) const {
  size_t table = (size_t{slots_} * sizeof(Header) + 4095) / 4096 * 4096;
  return base_ + kSuperBytes + table + size_t{slot} * slot_bytes_;
}

// Keeps every complete entry, the newest per block; frees the rest.
void Nvram::recover() {
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, NvramEntry> newest;
  std::vector<uint32_t> stale;
  for (uint32_t s = 0; s < slots_; ++s) {
    Header* h = header(s);
    bool whole = h->magic == kEntryMagic && h->crc == crc32c(h, offsetof(Header, crc)) &&
                 h->length <= slot_bytes_ && h->data_crc == crc32c(slot_data(s), h->length);
    if (!whole) {
      if (h->magic != 0) stale.push_back(s);  // torn: it never counted
      else free_.push_back(s);
      continue;
    }
    NvramEntry e{s, h->origin, h->vdisk, h->offset, h->length, h->seq, h->epoch};
    auto key = std::make_tuple(e.origin, e.vdisk, e.offset);
    auto it = newest.find(key);
    if (it == newest.end()) {
      newest.emplace(key, e);
    } else if (it->second.seq < e.seq) {
      stale.push_back(it->second.slot);
      it->second = e;
    } else {
      stale.push_back(s);
    }
  }
  for (uint32_t s : stale) release(s);
  for (auto& [key, e] : newest) recovered_.push_back(e);
}

int64_t Nvram::allocate() {
  if (free_.empty()) return -1;
  uint32_t s = free_.back();
  free_.pop_back();
  return s;
}

Status Nvram::store(uint32_t slot, const NvramEntry& e, const void* data) {
  if (slot >= slots_ || e.length > slot_bytes_)
    return make_error("nvram: entry does not fit its slot", EINVAL);
  std::memcpy(slot_data(slot), data, e.length);
  return commit(slot, e);
}

Status Nvram::commit(uint32_t slot, const NvramEntry& e) {
  if (slot >= slots_ || e.length > slot_bytes_)
    return make_error("nvram: entry does not fit its slot", EINVAL);
  const uint8_t* data = slot_data(slot);
  Header h{};
  h.magic = kEntryMagic;
  h.origin = e.origin;
  h.vdisk = e.vdisk;
  h.length = e.length;
  h.offset = e.offset;
  h.seq = e.seq;
  h.epoch = e.epoch;
  h.data_crc = crc32c(data, e.length);
  h.crc = crc32c(&h, offsetof(Header, crc));
  // The data is in place before the header that makes it count.
  std::atomic_thread_fence(std::memory_order_release);
  *header(slot) = h;
  return ok_status();
}

const void* Nvram::data(uint32_t slot) const { return slot_data(slot); }

void Nvram::invalidate(uint32_t slot) { header(slot)->magic = 0; }

void Nvram::release(uint32_t slot) {
  header(slot)->magic = 0;
  free_.push_back(slot);
}

Status Nvram::flush() {
  if (durable::msync(base_, bytes_, fd_) != 0) return sys_error("nvram: cannot sync " + path_);
  return ok_status();
}

Status Nvram::prefault() {
  if (::madvise(base_, bytes_, MADV_POPULATE_WRITE) != 0)
    return sys_error("nvram: cannot bring " + path_ + " into memory");
  return ok_status();
}

int save_nvram_files(const std::string& dir) {
  int saved = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("nvram-", 0) != 0) continue;
    UniqueFd fd(durable::open(entry.path().c_str(), O_RDWR | O_CLOEXEC));
    if (fd.valid()) saved += durable::fdatasync(fd.get()) == 0;
  }
  return saved;
}

}  // namespace sve

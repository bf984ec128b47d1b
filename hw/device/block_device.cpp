#include "hw/device/block_device.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "util/size.hpp"

namespace sve {
namespace {

Error errno_error(const std::string& what, int err) {
  return make_error(what + ": " + std::strerror(err), err);
}

// Smallest alignment O_DIRECT accepts on this file: try 512, else 4096.
uint32_t probe_direct_align(int fd, uint64_t size) {
  if (size < 4096) return 4096;
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, 4096) != 0) return 4096;
  ssize_t n = ::pread(fd, static_cast<char*>(mem) + 512, 512, 512);
  std::free(mem);
  return n == 512 ? 512 : 4096;
}

}  // namespace

bool BlockDevice::is_synthetic(const std::string& path) {
  return path.rfind("memory:", 0) == 0 || path.rfind("null:", 0) == 0;
}

BlockDevice::~BlockDevice() {
  if (memory_) ::munmap(memory_, size_bytes_);
}

Result<std::shared_ptr<BlockDevice>> BlockDevice::open_synthetic(const std::string& spec) {
  auto colon = spec.find(':');
  auto size = parse_size(spec.substr(colon + 1));
  if (!size || *size == 0) return make_error(spec + ": not a size (try memory:1G)", EINVAL);
  if (size.value() % 4096 != 0)
    return make_error(spec + ": the size must be a multiple of 4 KiB", EINVAL);
  auto dev = std::shared_ptr<BlockDevice>(new BlockDevice());
  dev->path_ = spec;
  dev->size_bytes_ = size.value();
  dev->direct_align_ = 512;
  if (spec.rfind("null:", 0) == 0) {
    dev->kind_ = DeviceKind::null;
    return dev;
  }
  // Reserved, not committed: pages appear as they are first written.
  void* mem = ::mmap(nullptr, dev->size_bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return errno_error(spec + ": cannot map memory", errno);
  dev->kind_ = DeviceKind::memory;
  dev->memory_ = static_cast<char*>(mem);
  return dev;
}

Result<std::shared_ptr<BlockDevice>> BlockDevice::open(const std::string& path) {
  if (is_synthetic(path)) return open_synthetic(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(path, errno);
  auto dev = std::shared_ptr<BlockDevice>(new BlockDevice());
  dev->path_ = path;
  if (S_ISBLK(st.st_mode)) {
    dev->is_block_device_ = true;
  } else if (!S_ISREG(st.st_mode)) {
    return make_error(path + ": not a regular file or block device", EINVAL);
  }

  dev->buffered_fd_.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!dev->buffered_fd_.valid()) return errno_error(path, errno);

  if (dev->is_block_device_) {
    uint64_t bytes = 0;
    if (::ioctl(dev->buffered_fd(), BLKGETSIZE64, &bytes) != 0)
      return errno_error(path + ": BLKGETSIZE64", errno);
    dev->size_bytes_ = bytes;
    int logical = 0;
    if (::ioctl(dev->buffered_fd(), BLKSSZGET, &logical) == 0 && logical > 0)
      dev->direct_align_ = static_cast<uint32_t>(logical);
  } else {
    dev->size_bytes_ = static_cast<uint64_t>(st.st_size);
  }

  dev->direct_fd_.reset(::open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC));
  if (!dev->direct_fd_.valid()) {
    spdlog::warn("{}: O_DIRECT not available ({}), using buffered I/O only",
                 path, std::strerror(errno));
  } else if (!dev->is_block_device_) {
    dev->direct_align_ = probe_direct_align(dev->direct_fd(), dev->size_bytes_);
  }
  return dev;
}

bool BlockDevice::can_go_direct(uint64_t offset, uint64_t length,
                                const void* memory) const {
  if (!direct_fd_.valid()) return false;
  uint64_t mask = direct_align_ - 1;
  return ((offset | length | reinterpret_cast<uintptr_t>(memory)) & mask) == 0;
}

// The synthetic kinds answer the configuration path from memory.
static Status synthetic_range(const BlockDevice& dev, uint64_t length, uint64_t offset) {
  if (offset + length > dev.size_bytes() || offset + length < offset)
    return make_error(dev.path() + ": access past end of device", EIO);
  return ok_status();
}

Status BlockDevice::read_at(void* out, uint64_t length, uint64_t offset) const {
  if (kind_ != DeviceKind::file) {
    if (auto st = synthetic_range(*this, length, offset); !st) return st;
    if (kind_ == DeviceKind::memory) std::memcpy(out, memory_ + offset, length);
    else std::memset(out, 0, length);
    return ok_status();
  }
  auto* p = static_cast<char*>(out);
  while (length > 0) {
    ssize_t n = ::pread(buffered_fd(), p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(path_ + ": read", errno);
    if (n == 0) return make_error(path_ + ": read past end of device", EIO);
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return ok_status();
}

Status BlockDevice::write_at(const void* data, uint64_t length,
                             uint64_t offset) const {
  if (kind_ != DeviceKind::file) {
    if (auto st = synthetic_range(*this, length, offset); !st) return st;
    if (kind_ == DeviceKind::memory) std::memcpy(memory_ + offset, data, length);
    return ok_status();
  }
  auto* p = static_cast<const char*>(data);
  while (length > 0) {
    ssize_t n = ::pwrite(buffered_fd(), p, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(path_ + ": write", errno);
    p += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return ok_status();
}

Status BlockDevice::zero_range(uint64_t offset, uint64_t length) const {
  if (kind_ != DeviceKind::file) {
    if (auto st = synthetic_range(*this, length, offset); !st) return st;
    if (kind_ == DeviceKind::memory) std::memset(memory_ + offset, 0, length);
    return ok_status();
  }
  // Punching a hole both zeroes and keeps sparse files sparse; block devices
  // turn it into a discard with zeroing. Fall back to writing zeroes.
  if (::fallocate(buffered_fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
    return ok_status();
  std::vector<char> zeros(1 << 20, 0);
  while (length > 0) {
    uint64_t n = std::min<uint64_t>(length, zeros.size());
    if (auto st = write_at(zeros.data(), n, offset); !st) return st;
    offset += n;
    length -= n;
  }
  return ok_status();
}

Status BlockDevice::sync() const {
  if (kind_ != DeviceKind::file) return ok_status();
  if (::fsync(buffered_fd()) != 0) return errno_error(path_ + ": fsync", errno);
  return ok_status();
}

}  // namespace sve

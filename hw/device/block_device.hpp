#pragma once
// A back-end block device as the node sees it: a regular file or a Linux
// block device, opened twice: once with O_DIRECT for aligned data-path I/O,
// once buffered for unaligned requests and the slow configuration path.
//
// Two synthetic kinds measure the stack without a disk (like SPDK's malloc
// and null bdevs): "memory:SIZE" keeps its data in anonymous memory for the
// life of the process, "null:SIZE" discards writes and reads zeroes.
#include <cstdint>
#include <memory>
#include <string>

#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve {

enum class DeviceKind : uint8_t { file, memory, null };

class BlockDevice {
 public:
  // A path, or a "memory:SIZE" / "null:SIZE" spec.
  static Result<std::shared_ptr<BlockDevice>> open(const std::string& path);
  // Whether `path` names a synthetic device (memory: or null:).
  static bool is_synthetic(const std::string& path);
  ~BlockDevice();

  DeviceKind kind() const { return kind_; }
  // A memory device's bytes (null for the other kinds).
  char* memory() const { return memory_; }

  const std::string& path() const { return path_; }
  uint64_t size_bytes() const { return size_bytes_; }
  bool is_block_device() const { return is_block_device_; }
  int buffered_fd() const { return buffered_fd_.get(); }
  int direct_fd() const { return direct_fd_.get(); }  // -1 without O_DIRECT
  uint32_t direct_align() const { return direct_align_; }

  // True when a request may take the O_DIRECT path: offset, length and
  // memory all aligned to what the device requires.
  bool can_go_direct(uint64_t offset, uint64_t length, const void* memory) const;

  // Synchronous helpers for the configuration path only (labels, zeroing new
  // extents). The data path goes through io_uring.
  Status read_at(void* out, uint64_t length, uint64_t offset) const;
  Status write_at(const void* data, uint64_t length, uint64_t offset) const;
  Status zero_range(uint64_t offset, uint64_t length) const;
  Status sync() const;

 private:
  static Result<std::shared_ptr<BlockDevice>> open_synthetic(const std::string& spec);

  std::string path_;
  DeviceKind kind_ = DeviceKind::file;
  char* memory_ = nullptr;
  UniqueFd buffered_fd_;
  UniqueFd direct_fd_;
  uint64_t size_bytes_ = 0;
  uint32_t direct_align_ = 4096;
  bool is_block_device_ = false;
};

}  // namespace sve

#pragma once
// Crash-safe persistence of a versioned blob in two copies, A and B (the
// paper's two copies of cluster state). Each save overwrites the older copy
// and fsyncs it, so a crash or power loss at any moment leaves at least one
// complete copy: either the previous version or the new one. Each copy
// carries its version and a CRC; load picks the newest copy that checks out.
//
// A copy that is torn (bad CRC) is expected after a crash and is ignored; if
// neither copy is readable, load fails and nothing is overwritten.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace sve {

struct StoredBlob {
  uint64_t version = 0;
  std::vector<char> payload;
};

class ConfigStore {
 public:
  // Copies are `dir`/`name`.a and .b.
  explicit ConfigStore(std::string dir, std::string name = "config")
      : dir_(std::move(dir)), name_(std::move(name)) {}

  // nullopt: no copy has ever been written (a fresh data directory).
  Result<std::optional<StoredBlob>> load();
  // `version` must be greater than any version saved before.
  Status save(uint64_t version, const std::vector<char>& payload);

  std::string slot_path(int slot) const;

 private:
  std::string dir_;
  std::string name_;
  int next_slot_ = 0;
};

// Exposed for tests: the on-disk frame of one copy.
std::vector<char> encode_slot(uint64_t version, const std::vector<char>& payload);
std::optional<StoredBlob> decode_slot(const std::vector<char>& bytes);

}  // namespace sve

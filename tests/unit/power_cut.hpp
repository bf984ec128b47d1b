#pragma once
// Power-loss testing in user space, after dm-log-writes and CrashMonkey:
// while a PowerCut is alive it watches every durable write SVE makes
// (util/durable.hpp). It knows, per file, what was last made durable (its
// bytes at the last sync, and whether its name is durable yet). cut() then
// does to the files what a power failure may do: a file whose name was never
// synced may vanish, and every 512-byte sector changed since the last sync
// comes back old or new, independently (unsynced writes dropped, reordered
// or torn), and the size old or new. Seeded: a failing seed replays.
//
// `fail_at_sync(n)` makes the n-th sync from now throw PowerFailure before it
// happens: the power fails in the middle of whatever was being saved.
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "util/durable.hpp"

namespace sve::test {

struct PowerFailure {};

class PowerCut final : public durable::Observer {
 public:
  PowerCut();
  ~PowerCut() override;
  PowerCut(const PowerCut&) = delete;
  PowerCut& operator=(const PowerCut&) = delete;

  // A random cut, seeded; `strict`: every unsynced change is lost (the
  // worst case, deterministic).
  void cut(uint64_t seed, bool strict = false);
  void fail_at_sync(int n) { fail_in_ = n; }
  uint64_t syncs() const { return syncs_; }

  void opened(int fd, bool created) override;
  void syncing(int fd) override;
  void synced(int fd) override;
  void renamed(const char* from, const char* to) override;

 private:
  struct File {
    bool name_durable = true;
    std::string data;  // its durable bytes (empty for a new file)
  };
  std::map<std::string, File> files_;
  int fail_in_ = -1;
  uint64_t syncs_ = 0;
};

}  // namespace sve::test

#pragma once
// The calls through which SVE makes its own metadata durable: the config
// store, the cluster state copies A and B, the NVRAM area. In production
// each is the system call it names. A test installs an Observer to learn
// which files changed and when they were synced, so it can simulate a power
// cut that keeps exactly what was made durable and loses, reorders or tears
// the rest (tests/unit/power_cut.hpp).
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace sve::durable {

class Observer {
 public:
  virtual ~Observer() = default;
  // `fd` was opened for writing; `created`: the name did not exist before.
  // Called before anything is written through it.
  virtual void opened(int fd, bool created) = 0;
  // About to sync `fd` (its data, or the names in a directory). May throw
  // to model the power failing right here.
  virtual void syncing(int fd) = 0;
  // `fd`'s data and size (or, for a directory, its names) are durable.
  virtual void synced(int fd) = 0;
  // `from` now has the name `to` (durable once its directory is synced).
  virtual void renamed(const char* from, const char* to) = 0;
};

// Tests only: at most one, installed while no other thread uses these calls.
void set_observer(Observer* observer);

// ::open, telling the observer about a file opened for writing.
int open(const char* path, int flags, mode_t mode = 0);
int fdatasync(int fd);
int rename(const char* from, const char* to);
// fsync of a directory (empty: the current one): the names created or
// renamed in it are durable. -1 with errno when it cannot be opened.
int fsync_dir(const std::string& dir);
// msync(MS_SYNC) of a shared mapping of `fd`.
int msync(void* addr, size_t length, int fd);

}  // namespace sve::durable

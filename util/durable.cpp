#include "util/durable.hpp"

#include <fcntl.h>
#include <sys/mman.h>

#include <unistd.h>

#include <cstdio>

#include "util/fd.hpp"

namespace sve::durable {
namespace {

Observer* g_observer = nullptr;

}  // namespace

void set_observer(Observer* observer) { g_observer = observer; }

int open(const char* path, int flags, mode_t mode) {
  bool writes = (flags & O_ACCMODE) != O_RDONLY;
  bool existed = !g_observer || !writes || ::access(path, F_OK) == 0;
  int fd = ::open(path, flags, mode);
  if (fd >= 0 && g_observer && writes) g_observer->opened(fd, !existed);
  return fd;
}

namespace {

// A sync the observer sees coming (it may stop it: a power failure) and
// sees done.
template <typename Sync>
int observed(int fd, Sync sync) {
  if (g_observer) g_observer->syncing(fd);
  int rc = sync();
  if (rc == 0 && g_observer) g_observer->synced(fd);
  return rc;
}

}  // namespace

int fdatasync(int fd) {
  return observed(fd, [&] { return ::fdatasync(fd); });
}

int rename(const char* from, const char* to) {
  int rc = ::rename(from, to);
  if (rc == 0 && g_observer) g_observer->renamed(from, to);
  return rc;
}

int fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  return observed(fd.get(), [&] { return ::fsync(fd.get()); });
}

int msync(void* addr, size_t length, int fd) {
  return observed(fd, [&] { return ::msync(addr, length, MS_SYNC); });
}

}  // namespace sve::durable

#include "util/durable.hpp"

#include <fcntl.h>
#include <sys/mman.h>

#include <cstdio>
#include <unistd.h>

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

int fdatasync(int fd) {
  if (g_observer) g_observer->syncing(fd);
  int rc = ::fdatasync(fd);
  if (rc == 0 && g_observer) g_observer->synced(fd);
  return rc;
}

int rename(const char* from, const char* to) {
  int rc = ::rename(from, to);
  if (rc == 0 && g_observer) g_observer->renamed(from, to);
  return rc;
}

int fsync_dir(int dir_fd) {
  if (g_observer) g_observer->syncing(dir_fd);
  int rc = ::fsync(dir_fd);
  if (rc == 0 && g_observer) g_observer->synced(dir_fd);
  return rc;
}

int msync(void* addr, size_t length, int fd) {
  if (g_observer) g_observer->syncing(fd);
  int rc = ::msync(addr, length, MS_SYNC);
  if (rc == 0 && g_observer) g_observer->synced(fd);
  return rc;
}

}  // namespace sve::durable

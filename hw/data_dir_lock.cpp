#include "hw/data_dir_lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sve {

Result<DataDirLock> DataDirLock::acquire(const std::string& data_dir) {
  std::string path = data_dir + "/sved.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid())
    return make_error("cannot open " + path + ": " + std::strerror(errno), errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    ssize_t n = ::pread(fd.get(), pid, sizeof pid - 1, 0);
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n')) holder.pop_back();
    return make_error("data directory " + data_dir +
                          " is locked by another sved (pid " + holder + ")",
                      EBUSY);
  }
  std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) == 0)
    (void)!::pwrite(fd.get(), me.data(), me.size(), 0);
  DataDirLock lock;
  lock.fd_ = std::move(fd);
  return lock;
}

Result<DataDirLock> lock_data_dir(const std::string& data_dir) {
  if (::mkdir(data_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error("cannot create data dir " + data_dir + ": " + std::strerror(errno), errno);
  return DataDirLock::acquire(data_dir);
}

}  // namespace sve

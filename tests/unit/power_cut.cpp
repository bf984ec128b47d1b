#include "power_cut.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sve::test {
namespace {

constexpr size_t kSector = 512;

std::string path_of(int fd) {
  return std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd)).string();
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void overwrite(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("power cut: cannot open " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) throw std::runtime_error("power cut: cannot write " + path);
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd, static_cast<off_t>(bytes.size())) != 0)
    throw std::runtime_error("power cut: cannot truncate " + path);
  ::close(fd);
}

}  // namespace

PowerCut::PowerCut() { durable::set_observer(this); }
PowerCut::~PowerCut() { durable::set_observer(nullptr); }

void PowerCut::opened(int fd, bool created) {
  std::string path = path_of(fd);
  if (files_.count(path)) return;  // what it held before this change is known
  File f;
  f.name_durable = !created;
  if (!created) f.data = contents(path);
  files_.emplace(path, std::move(f));
}

void PowerCut::syncing(int fd) {
  ++syncs_;
  if (fail_in_ > 0 && --fail_in_ == 0) {
    fail_in_ = -1;
    throw PowerFailure{};
  }
}

void PowerCut::synced(int fd) {
  std::string path = path_of(fd);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    for (auto& [name, f] : files_)
      if (std::filesystem::path(name).parent_path() == path) f.name_durable = true;
    return;
  }
  auto it = files_.find(path);
  if (it != files_.end()) it->second.data = contents(path);
}

void PowerCut::renamed(const char* from, const char* to) {
  auto it = files_.find(std::filesystem::weakly_canonical(from).string());
  File f = it != files_.end() ? it->second : File{true, contents(to)};
  if (it != files_.end()) files_.erase(it);
  // Until its directory is synced, the rename may be undone by a cut:
  // `to` is then gone (a name that existed before is not modelled).
  f.name_durable = false;
  files_[std::filesystem::weakly_canonical(to).string()] = std::move(f);
}

void PowerCut::cut(uint64_t seed, bool strict) {
  std::mt19937_64 rng(seed);
  auto coin = [&] { return !strict && (rng() & 1); };
  for (auto& [path, f] : files_) {
    if (!std::filesystem::exists(path)) continue;
    if (!f.name_durable && !coin()) {
      std::filesystem::remove(path);
      continue;
    }
    std::string now = contents(path);
    const std::string& old = f.data;
    size_t size = coin() ? now.size() : old.size();
    std::string out(size, '\0');
    for (size_t at = 0; at < size; at += kSector) {
      const std::string& from = coin() ? now : old;
      size_t n = std::min(kSector, size - at);
      if (at < from.size())
        std::copy_n(from.begin() + static_cast<long>(at), std::min(n, from.size() - at),
                    out.begin() + static_cast<long>(at));
    }
    overwrite(path, out);
  }
  files_.clear();  // what is on disk now is what the next boot finds
}

}  // namespace sve::test

#include "cluster/state/config_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/crc.hpp"
#include "util/durable.hpp"
#include "util/fd.hpp"

namespace sve {
namespace {

constexpr char kMagic[8] = {'S', 'V', 'E', 'C', 'F', 'G', '0', '1'};
// magic[8] | u64 version | u64 payload length | u32 crc(header fields+payload)
constexpr size_t kHeader = 8 + 8 + 8 + 4;

}  // namespace

std::vector<char> encode_slot(uint64_t version, const std::vector<char>& payload) {
  std::vector<char> out(kHeader + payload.size());
  uint64_t len = payload.size();
  std::memcpy(out.data(), kMagic, 8);
  std::memcpy(out.data() + 8, &version, 8);
  std::memcpy(out.data() + 16, &len, 8);
  std::memcpy(out.data() + kHeader, payload.data(), payload.size());
  // The CRC covers version and length too, so a torn header is caught.
  std::vector<char> covered(out.begin() + 8, out.begin() + 24);
  covered.insert(covered.end(), payload.begin(), payload.end());
  uint32_t crc = crc32c(covered.data(), covered.size());
  std::memcpy(out.data() + 24, &crc, 4);
  return out;
}

std::optional<StoredBlob> decode_slot(const std::vector<char>& bytes) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return std::nullopt;
  StoredBlob blob;
  uint64_t len = 0;
  uint32_t crc = 0;
  std::memcpy(&blob.version, bytes.data() + 8, 8);
  std::memcpy(&len, bytes.data() + 16, 8);
  std::memcpy(&crc, bytes.data() + 24, 4);
  if (len != bytes.size() - kHeader) return std::nullopt;
  std::vector<char> covered(bytes.begin() + 8, bytes.begin() + 24);
  covered.insert(covered.end(), bytes.begin() + kHeader, bytes.end());
  if (crc32c(covered.data(), covered.size()) != crc) return std::nullopt;
  blob.payload.assign(bytes.begin() + kHeader, bytes.end());
  return blob;
}

std::string ConfigStore::slot_path(int slot) const {
  return dir_ + "/" + name_ + (slot == 0 ? ".a" : ".b");
}

Result<std::optional<StoredBlob>> ConfigStore::load() {
  std::optional<StoredBlob> best;
  int best_slot = -1;
  int present = 0;
  for (int slot = 0; slot < 2; ++slot) {
    std::string path = slot_path(slot);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) continue;
      return sys_error("cannot open " + path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return sys_error("cannot stat " + path);
    ++present;
    std::vector<char> bytes(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error("cannot read " + path);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    bytes.resize(got);
    auto blob = decode_slot(bytes);
    if (blob && (!best || blob->version > best->version)) {
      best = std::move(blob);
      best_slot = slot;
    }
  }
  if (present > 0 && !best)
    return make_error("configuration in " + dir_ +
                          " is corrupt (no readable copy in config.a or config.b); "
                          "refusing to start and leaving it untouched",
                      EUCLEAN);
  // The next save overwrites the copy that did not win.
  next_slot_ = best_slot == 0 ? 1 : 0;
  return best;
}

namespace {

Status write_synced(const std::string& path, const std::vector<char>& bytes) {
  UniqueFd fd(durable::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return sys_error("cannot open " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd.get(), bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("cannot write " + path);
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes.size())) != 0)
    return sys_error("cannot truncate " + path);
  if (durable::fdatasync(fd.get()) != 0) return sys_error("cannot sync " + path);
  return ok_status();
}

}  // namespace

Status ConfigStore::save(uint64_t version, const std::vector<char>& payload) {
  std::string path = slot_path(next_slot_);
  auto bytes = encode_slot(version, payload);
  // A copy that does not exist yet appears whole or not at all (written
  // aside, then renamed): a power cut during the very first save must not
  // leave a lone torn copy, which load could not tell from a damaged one.
  bool exists = ::access(path.c_str(), F_OK) == 0;
  std::string target = exists ? path : path + ".new";
  if (Status st = write_synced(target, bytes); !st) return st;
  if (!exists && durable::rename(target.c_str(), path.c_str()) != 0)
    return sys_error("cannot rename " + target);
  // The first time a copy appears, make its directory entry durable too.
  durable::fsync_dir(dir_);
  next_slot_ = 1 - next_slot_;
  return ok_status();
}

}  // namespace sve

#include "io/auth/cluster_key.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "util/crc.hpp"
#include "util/durable.hpp"
#include "util/fd.hpp"

namespace sve {
namespace {

// magic | key | crc32c(key): a torn or foreign file is told from a key.
constexpr char kMagic[8] = {'S', 'V', 'E', 'K', 'E', 'Y', '0', '1'};
constexpr size_t kFileBytes = sizeof kMagic + kClusterKeyBytes + 4;

ClusterKeyBytes fresh_key() {
  ClusterKeyBytes key;
  random_bytes(key.data(), key.size());
  return key;
}

}  // namespace

PeerMac peer_mac(const ClusterKeyBytes& key, std::initializer_list<std::string_view> parts) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, key.data(), key.size());
  for (std::string_view part : parts) {
    uint64_t length = part.size();
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(&length),
                                  sizeof length);
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                                  part.size());
  }
  PeerMac mac;
  crypto_auth_hmacsha256_final(&state, mac.data());
  return mac;
}

bool peer_mac_matches(const PeerMac& expected, const uint8_t* got) {
  return sodium_memcmp(expected.data(), got, expected.size()) == 0;
}

void random_bytes(void* out, size_t bytes) {
  static const int once = sodium_init();  // 1 (already done) is as good as 0
  (void)once;
  randombytes_buf(out, bytes);
}

ClusterKey::ClusterKey(const std::string& dir) : path_(dir.empty() ? "" : dir + "/cluster.key") {}

Status ClusterKey::ensure() {
  std::lock_guard lock(mu_);
  if (!path_.empty()) {
    UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    char bytes[kFileBytes + 1];
    ssize_t n = fd.valid() ? ::read(fd.get(), bytes, sizeof bytes) : -1;
    uint32_t crc = 0;
    if (n == static_cast<ssize_t>(kFileBytes)) std::memcpy(&crc, bytes + kFileBytes - 4, 4);
    if (n == static_cast<ssize_t>(kFileBytes) && std::memcmp(bytes, kMagic, sizeof kMagic) == 0 &&
        crc32c(bytes + sizeof kMagic, kClusterKeyBytes) == crc) {
      std::memcpy(key_.data(), bytes + sizeof kMagic, kClusterKeyBytes);
      return ok_status();
    }
  }
  return write(fresh_key());
}

Status ClusterKey::install(const std::string& hex) {
  ClusterKeyBytes key;
  size_t got = 0;
  if (hex.size() != 2 * kClusterKeyBytes ||
      sodium_hex2bin(key.data(), key.size(), hex.data(), hex.size(), nullptr, &got, nullptr) != 0 ||
      got != kClusterKeyBytes)
    return make_error("a cluster key is " + std::to_string(2 * kClusterKeyBytes) + " hex digits",
                      EINVAL);
  std::lock_guard lock(mu_);
  return write(key);
}

Status ClusterKey::renew() {
  std::lock_guard lock(mu_);
  return write(fresh_key());
}

Status ClusterKey::write(const ClusterKeyBytes& key) {
  if (!path_.empty()) {
    char bytes[kFileBytes];
    std::memcpy(bytes, kMagic, sizeof kMagic);
    std::memcpy(bytes + sizeof kMagic, key.data(), kClusterKeyBytes);
    uint32_t crc = crc32c(key.data(), kClusterKeyBytes);
    std::memcpy(bytes + sizeof kMagic + kClusterKeyBytes, &crc, 4);
    std::string tmp = path_ + ".new";
    UniqueFd fd(durable::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("cannot write the cluster key " + tmp);
    ::fchmod(fd.get(), 0600);  // (an older file may have had another mode)
    if (::write(fd.get(), bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes) ||
        durable::fdatasync(fd.get()) != 0)
      return sys_error("cannot write the cluster key " + tmp);
    if (durable::rename(tmp.c_str(), path_.c_str()) != 0)
      return sys_error("cannot install the cluster key " + path_);
    durable::fsync_dir(std::filesystem::path(path_).parent_path().string());
  }
  key_ = key;
  return ok_status();
}

ClusterKeyBytes ClusterKey::get() const {
  std::lock_guard lock(mu_);
  return key_;
}

std::string ClusterKey::hex() const {
  std::lock_guard lock(mu_);
  char out[2 * kClusterKeyBytes + 1];
  sodium_bin2hex(out, sizeof out, key_.data(), key_.size());
  return out;
}

}  // namespace sve

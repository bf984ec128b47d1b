#include "cluster/host/file_env.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/bounded_unpack.hpp"
#include "util/crc.hpp"

namespace sve::cluster {
namespace {

template <typename T>
std::vector<char> pack(const T& value) {
  msgpack::sbuffer out;
  msgpack::pack(out, value);
  return std::vector<char>(out.data(), out.data() + out.size());
}

template <typename T>
T unpack(const std::vector<char>& bytes, const std::string& what) {
  try {
    return bounded_unpack(bytes.data(), bytes.size()).get().as<T>();
  } catch (const std::exception& e) {
    throw std::runtime_error(what + " does not decode: " + e.what());
  }
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

constexpr size_t kQuorumRecordBytes = 4096;

}  // namespace

FileEnv::FileEnv(const std::string& data_dir, std::string quorum_path,
                 std::function<void(NodeId, Message)> send)
    : send_(std::move(send)), durable_(data_dir, "cluster"), quorum_path_(std::move(quorum_path)) {
  copies_[0] = std::make_unique<ConfigStore>(data_dir, "state-a");
  copies_[1] = std::make_unique<ConfigStore>(data_dir, "state-b");
  if (!quorum_path_.empty()) {
    quorum_fd_ = ::open(quorum_path_.c_str(), O_RDWR | O_DSYNC | O_CLOEXEC);
    if (quorum_fd_ < 0) fail("cannot open quorum device " + quorum_path_);
    off_t size = ::lseek(quorum_fd_, 0, SEEK_END);
    if (size < static_cast<off_t>(kQuorumAreaOffset + kQuorumRecordBytes)) {
      ::close(quorum_fd_);
      quorum_fd_ = -1;
      errno = EINVAL;
      fail("quorum device " + quorum_path_ + " is smaller than " +
           std::to_string(kQuorumAreaOffset + kQuorumRecordBytes) + " bytes");
    }
  }
}

FileEnv::~FileEnv() {
  if (quorum_fd_ >= 0) ::close(quorum_fd_);
}

uint64_t FileEnv::now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void FileEnv::persist(const Durable& state) {
  if (auto st = durable_.save(++durable_version_, pack(state)); !st)
    throw std::runtime_error(st.error().message);
}

Durable FileEnv::load() {
  auto stored = durable_.load();
  if (!stored) throw std::runtime_error(stored.error().message);
  if (!stored.value()) return {};
  durable_version_ = stored.value()->version;
  return unpack<Durable>(stored.value()->payload, "cluster membership state");
}

void FileEnv::write_copy(int which, const StateCopy& copy) {
  if (auto st = copies_[which]->save(++copy_version_[which], pack(copy)); !st)
    throw std::runtime_error(st.error().message);
}

StateCopy FileEnv::read_copy(int which) {
  auto stored = copies_[which]->load();
  // A copy that cannot be read is one the other copy replaces.
  if (!stored || !stored.value()) return {};
  copy_version_[which] = stored.value()->version;
  try {
    return bounded_unpack(stored.value()->payload.data(), stored.value()->payload.size())
        .get()
        .as<StateCopy>();
  } catch (const std::exception&) {
    return {};
  }
}

// The record: [crc32c][length][msgpack QuorumRecord], zero padded.
QuorumRecord FileEnv::read_quorum() {
  std::vector<char> block(kQuorumRecordBytes);
  ssize_t n = ::pread(quorum_fd_, block.data(), block.size(), kQuorumAreaOffset);
  if (n != static_cast<ssize_t>(block.size())) fail("cannot read quorum device " + quorum_path_);
  uint32_t crc = 0, length = 0;
  std::memcpy(&crc, block.data(), 4);
  std::memcpy(&length, block.data() + 4, 4);
  if (length == 0 || length > kQuorumRecordBytes - 8 || crc32c(block.data() + 8, length) != crc)
    return {};  // never written (or torn): nobody holds it
  try {
    return bounded_unpack(block.data() + 8, length).get().as<QuorumRecord>();
  } catch (const std::exception&) {
    return {};
  }
}

void FileEnv::write_quorum(const QuorumRecord& r) {
  std::vector<char> body = pack(r);
  std::vector<char> block(kQuorumRecordBytes, 0);
  uint32_t length = static_cast<uint32_t>(body.size());
  uint32_t crc = crc32c(body.data(), body.size());
  std::memcpy(block.data(), &crc, 4);
  std::memcpy(block.data() + 4, &length, 4);
  std::memcpy(block.data() + 8, body.data(), body.size());
  ssize_t n = ::pwrite(quorum_fd_, block.data(), block.size(), kQuorumAreaOffset);
  if (n != static_cast<ssize_t>(block.size())) fail("cannot write quorum device " + quorum_path_);
}

}  // namespace sve::cluster

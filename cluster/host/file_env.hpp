#pragma once
// The protocol core's environment on a real node: the monotonic clock,
// durable state in the data directory (each write fsynced, in two copies so
// that a torn write loses nothing), the cluster-state copies A and B, and
// the quorum device. Sending is the host's (it owns the transport).
//
// Disk errors are fatal: a node that cannot persist what it voted for must
// not go on voting. They throw, and the node process stops.
#include <functional>
#include <memory>
#include <string>

#include "cluster/protocol/env.hpp"
#include "cluster/rsm/replicated_state.hpp"
#include "cluster/state/config_store.hpp"

namespace sve::cluster {

// The quorum area: one 4 KiB record 64 KiB into a shared device or file
// (inside an mdisk's reserved label area, which the data path never
// touches), written with O_DSYNC so every node sees the last write.
inline constexpr uint64_t kQuorumAreaOffset = 64 * 1024;

class FileEnv final : public Env, public CopyStore {
 public:
  FileEnv(const std::string& data_dir, std::string quorum_path,
          std::function<void(NodeId, Message)> send);
  ~FileEnv() override;

  uint64_t now_ms() override;
  void send(NodeId to, Message message) override { send_(to, std::move(message)); }
  void persist(const Durable& state) override;
  Durable load() override;
  bool has_quorum_device() override { return quorum_fd_ >= 0; }
  QuorumRecord read_quorum() override;
  void write_quorum(const QuorumRecord& r) override;

  std::string snapshot() override { return snapshot_ ? snapshot_() : std::string(); }
  void restore(uint64_t seq, const std::string& state) override {
    if (restore_) restore_(seq, state);
  }
  // The replicated state's owner answers these.
  std::function<std::string()> snapshot_;
  std::function<void(uint64_t, const std::string&)> restore_;

  void write_copy(int which, const StateCopy& copy) override;
  StateCopy read_copy(int which) override;

  const std::string& quorum_path() const { return quorum_path_; }

 private:
  std::function<void(NodeId, Message)> send_;
  ConfigStore durable_;
  uint64_t durable_version_ = 0;
  std::unique_ptr<ConfigStore> copies_[2];
  uint64_t copy_version_[2] = {0, 0};
  std::string quorum_path_;
  int quorum_fd_ = -1;
};

}  // namespace sve::cluster

#pragma once
// One node's share of the cluster, without threads or sockets of its own:
// the protocol core, the replicated state (copies A and B on disk) and the
// two RSMs every node runs: cluster membership (name, nodes, addresses) and
// the virtualization model (mdisks, pools, vdisks). The cluster actor owns
// it, feeds it ticks and messages, and carries what it sends.
//
// Admin operations are proposed as events; the answer comes back through
// the call gate (reply callback) once the event commits, on this node only.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/host/file_env.hpp"
#include "cluster/protocol/cluster_core.hpp"
#include "cluster/rsm/replicated_state.hpp"
#include "cluster/state/cluster_state.hpp"
#include "util/result.hpp"
#include "model/model.hpp"

namespace sve::cluster {

struct ClusterHostOptions {
  NodeId self = 0;
  std::string address;      // this node's cluster address, HOST:PORT
  std::string data_dir;
  std::string quorum_path;  // empty: no quorum device
  CoreConfig core;
};

struct ClusterHostCallbacks {
  // `address` is empty for a node this one knows no address of (yet).
  std::function<void(NodeId to, const std::string& address, std::string bytes)> send;
  std::function<void(uint64_t request, nlohmann::json reply)> reply;
  std::function<void(const ClusterModel&)> config_changed;
  std::function<void(const ClusterInfo&)> membership_changed;
};

class ClusterHost {
 public:
  ClusterHost(ClusterHostOptions options, ClusterHostCallbacks callbacks);
  ~ClusterHost();

  void start();
  void tick();
  void receive(NodeId from, const std::string& bytes);

  // Each returns the request id its answer will carry, or an error now
  // (no quorum, not in a cluster, bad arguments).
  Result<uint64_t> create(const std::string& name, ClusterModel initial);
  Result<uint64_t> add_node(NodeId id, const std::string& address);
  Result<uint64_t> remove_node(NodeId id);
  Result<uint64_t> replace_config(uint64_t base, const ClusterModel& next);
  Result<uint64_t> append_audit(const AuditEntry& entry);
  AuditLog audit_log() const;

  nlohmann::json status();
  nlohmann::json node_list();
  bool has_quorum() { return core_->has_quorum(); }
  bool in_cluster() const { return core_->in_cluster(); }
  const ClusterInfo& info() const { return info_; }
  const ClusterModel& config() const { return config_; }
  const ClusterCore& core() const { return *core_; }

 private:
  Result<uint64_t> propose(ClusterEvent event);
  void on_commit(uint64_t seq, const Entry& entry);
  void settle();
  void build_state();

  ClusterHostOptions options_;
  ClusterHostCallbacks callbacks_;
  std::unique_ptr<FileEnv> env_;
  std::unique_ptr<ClusterCore> core_;
  std::unique_ptr<Rsm> membership_rsm_;
  std::unique_ptr<Rsm> config_rsm_;
  std::unique_ptr<Rsm> audit_rsm_;
  std::unique_ptr<ReplicatedState> state_;
  ClusterInfo info_;
  ClusterModel config_;
  std::string info_bytes_, config_bytes_;  // as last published
  uint64_t next_request_ = 0;
  bool dirty_ = false;
};

}  // namespace sve::cluster

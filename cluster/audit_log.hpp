#pragma once
// The audit log as the admin API shows it, and where a node that stands
// alone keeps its own (docs/security.md, "Audit log"). In a cluster the
// log is replicated state (cluster/host/cluster_rsms.hpp's AuditRsm); a
// node without one appends to DATA_DIR/audit.log, a line of msgpack-free
// JSON per entry, cut back to the newest kAuditKeep when it grows past
// twice that. No CAF.
#include <cstdint>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/state/cluster_state.hpp"

namespace sve {

// The newest entries of `log`, at most request["count"], none older than
// request["since"] (Unix seconds), oldest first.
nlohmann::json audit_json(const AuditLog& log, const nlohmann::json& request);

class AuditFile {
 public:
  explicit AuditFile(std::string path) : path_(std::move(path)) {}
  // Numbers the entry and appends it (best effort: a full disk loses the
  // entry, not the command; the node's log has the line too).
  void append(AuditEntry entry);
  AuditLog read() const;

 private:
  AuditLog read_locked() const;

  std::string path_;
  mutable std::mutex mu_;
  uint64_t next_ = 0;  // 0: not read yet
  uint64_t lines_ = 0;
};

}  // namespace sve

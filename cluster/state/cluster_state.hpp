#pragma once
// What the cluster itself replicates besides the virtualization model: its
// name and identity, and the configured nodes with their cluster addresses.
// Events are msgpack records; every node's RSMs apply them in commit order.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "util/bounded_unpack.hpp"

namespace sve {

struct ClusterNodeInfo {
  uint32_t id = 0;
  std::string address;  // HOST:PORT of its cluster port
  MSGPACK_DEFINE_MAP(id, address);
};

struct ClusterInfo {
  std::string name;
  std::string uuid;  // also the configuration's uuid, written into mdisk labels
  std::vector<ClusterNodeInfo> nodes;  // sorted by id
  uint64_t nodes_seq = 0;              // the event that last changed them
  MSGPACK_DEFINE_MAP(name, uuid, nodes, nodes_seq);

  const ClusterNodeInfo* find(uint32_t id) const {
    for (const auto& n : nodes)
      if (n.id == id) return &n;
    return nullptr;
  }
};

// One line of the cluster's audit log (docs/security.md, "Audit log"): an
// admin command that changes something, or one refused (a failed login
// among them), as the node that took it saw it.
struct AuditEntry {
  uint64_t seq = 0;      // given by the audit RSM, in commit order
  uint64_t time_ms = 0;  // Unix time on the node that took the command
  uint32_t node = 0;     // that node
  std::string who;       // "'adm' (administrator)", "a loopback client", ...
  std::string from;      // the client's address
  std::string command;   // the request as JSON, secrets masked
  bool ok = false;
  std::string result;    // "ok", or why it was refused
  uint64_t suppressed = 0;  // refusals not recorded before this one (rate limit)
  MSGPACK_DEFINE_MAP(seq, time_ms, node, who, from, command, ok, result, suppressed);
};

// The newest entries, oldest first (kAuditKeep of them).
struct AuditLog {
  uint64_t next = 1;
  std::vector<AuditEntry> entries;
  MSGPACK_DEFINE_MAP(next, entries);
};
inline constexpr size_t kAuditKeep = 1000;

// One committed event. `origin` and `request` route the answer back through
// the call gate to the node (and the admin request) that proposed it.
struct ClusterEvent {
  enum Kind : uint8_t {
    create = 0,         // body: ClusterInfo (one node) then the first ClusterModel
    node_add = 1,       // node, address
    node_remove = 2,    // node
    config_replace = 3,  // body: the next ClusterModel, valid only on top of `base`
    audit_append = 4     // body: an AuditEntry
  };
  uint8_t kind = create;
  uint32_t origin = 0;
  uint64_t request = 0;
  uint32_t node = 0;
  std::string address;
  uint64_t base = 0;
  std::string body;
  std::string body2;
  MSGPACK_DEFINE_MAP(kind, origin, request, node, address, base, body, body2);
};

template <typename T>
std::string pack_to_string(const T& value) {
  msgpack::sbuffer out;
  msgpack::pack(out, value);
  return std::string(out.data(), out.size());
}

template <typename T>
std::optional<T> unpack_from_string(const std::string& bytes) {
  if (bytes.empty()) return std::nullopt;
  try {
    auto handle = bounded_unpack(bytes.data(), bytes.size());
    return handle.get().as<T>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace sve

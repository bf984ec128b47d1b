#pragma once
// The cluster key: 32 random bytes the nodes of one cluster share
// (docs/security.md, "Cluster links"). Made when the cluster is created,
// handed by `node add` to the node it adds, kept in the data directory
// (cluster.key, mode 0600, written durably, replaced in one rename).
//
// Every connection between two nodes opens with a handshake in which both
// ends prove, by HMAC-SHA-256 over nonces each picked afresh, that they
// hold it (io/channel/channel_auth.hpp): the cluster links that carry
// heartbeats, events and the interconnect's messages (through
// io/channel/cluster_tunnel.hpp), and the data channels that carry the
// cache's copies and forwarded requests. A process without the key cannot
// join, inject events or take a copy of data.
//
// A node that belongs to no cluster holds a key of its own that nobody
// else has: it lets in no one until a cluster adds it. Any thread may read
// the holder. No CAF; libsodium inside.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hpp"

namespace sve {

inline constexpr size_t kClusterKeyBytes = 32;
inline constexpr size_t kPeerMacBytes = 32;
using ClusterKeyBytes = std::array<uint8_t, kClusterKeyBytes>;
using PeerMac = std::array<uint8_t, kPeerMacBytes>;

// HMAC-SHA-256 under `key` of `parts`, each preceded by its length, so that
// no two different lists of parts have the same MAC input. The first part
// names the purpose, so a MAC made for one purpose never passes for another.
PeerMac peer_mac(const ClusterKeyBytes& key, std::initializer_list<std::string_view> parts);
// In constant time.
bool peer_mac_matches(const PeerMac& expected, const uint8_t* got);
void random_bytes(void* out, size_t bytes);

class ClusterKey {
 public:
  // The key's file is `dir`/cluster.key; an empty `dir` keeps it in memory.
  explicit ClusterKey(const std::string& dir);

  // Loads the file, or (none, or not a key) makes this node a key of its
  // own and writes it: afterwards the node has a key.
  Status ensure();
  // A cluster's key, as `node add` hands it over (64 hex digits): durable
  // before it returns.
  Status install(const std::string& hex);
  // A new key (cluster create), or a new key of this node's own (it left
  // its cluster).
  Status renew();

  ClusterKeyBytes get() const;
  std::string hex() const;
  const std::string& path() const { return path_; }

 private:
  Status write(const ClusterKeyBytes& key);  // with mu_ held

  std::string path_;
  mutable std::mutex mu_;
  ClusterKeyBytes key_{};
};

}  // namespace sve

#pragma once
// The cluster links between nodes, through a handshake. CAF's middleman
// carries the cluster protocol (heartbeats, events, votes) and the
// interconnect's messages, and it trusts whatever a connection tells it:
// the sender and the message types it names. So no connection from
// outside the node reaches it directly. It listens on loopback only, and:
//
//   inbound:  the node's cluster address is this tunnel's listener. A
//             caller must prove it holds the cluster key (channel_auth.hpp,
//             purpose cluster_link) within two seconds; then its bytes are
//             relayed to the middleman's loopback port, and back.
//   outbound: CAF connects to a loopback port this tunnel opened for the
//             peer (route()); the tunnel connects to the peer's cluster
//             address, proves the key and checks the peer's proof, then
//             relays. A peer that cannot prove the key gets nothing.
//
// Between the tunnels of two nodes the bytes travel encrypted and
// authenticated in records under the connection's own keys
// (frame_seal.hpp): nothing can be read, changed or injected on the path.
//
// A thread accepts on every listener; each connection is relayed by a
// thread of its own (a node has a few links: one each way per peer).
// Refused callers are counted and logged (at most once a second). No CAF.
#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hw/port/tcp.hpp"
#include "io/auth/cluster_key.hpp"
#include "io/channel/frame_seal.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve::channel {

struct TunnelStats {
  uint64_t accepted = 0;         // inbound links that proved the key
  uint64_t refused = 0;          // inbound callers that did not
  uint64_t connected = 0;        // outbound links to peers that proved it
  uint64_t failed = 0;           // outbound links that failed (unreachable, or no proof)
  uint64_t tampered = 0;         // links cut for a record that failed its check
};

class ClusterTunnel {
 public:
  // Listens on `cluster` (the node's cluster address) for node `self`.
  static Result<std::unique_ptr<ClusterTunnel>> open(const HostPortAddress& cluster, uint32_t self,
                                                     std::shared_ptr<const ClusterKey> key);
  ~ClusterTunnel();

  // Where the middleman listens (loopback): inbound links go there. Until
  // set, an inbound caller is closed after its handshake.
  void set_inner_port(uint16_t port) { inner_port_ = port; }
  // The loopback address whose connections lead to the node at `peer`
  // (HOST:PORT), opened on first use.
  Result<HostPortAddress> route(const std::string& peer);

  TunnelStats stats() const;
  uint16_t port() const { return port_; }  // the cluster address's

 private:
  struct Route {
    HostPortAddress peer;
    UniqueFd listener;
    uint16_t port = 0;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  ClusterTunnel() = default;
  void accept_loop();
  void spawn(void (ClusterTunnel::*work)(UniqueFd, HostPortAddress), UniqueFd fd,
             HostPortAddress peer);
  void inbound(UniqueFd caller, HostPortAddress unused);
  void outbound(UniqueFd local, HostPortAddress peer);
  void relay(int plain, int sealed, const SessionKeys& keys);
  void warn(const std::string& line);

  uint32_t self_ = 0;
  uint64_t instance_ = 0;
  std::shared_ptr<const ClusterKey> key_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  UniqueFd wake_;  // an eventfd: a new route's listener joins the poll
  std::atomic<uint16_t> inner_port_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::map<std::string, Route> routes_;
  std::list<Worker> workers_;  // accept thread only
  std::atomic<uint64_t> accepted_{0}, refused_{0}, connected_{0}, failed_{0}, tampered_{0};
  std::atomic<uint64_t> last_warning_ms_{0};
  std::thread thread_;
};

// Where a link to the node at `address` (HOST:PORT) connects: through
// `tunnel` where there is one (a node's), else straight there (actors in
// a test without one).
Result<HostPortAddress> link_target(ClusterTunnel* tunnel, const std::string& address);

}  // namespace sve::channel

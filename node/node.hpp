#pragma once
// One SVE node in one process: the actor system, the facility stack on each
// core, the configuration actor, the host ports and the admin API.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hw/port/tcp.hpp"
#include "io/reactor/core_io.hpp"
#include "io/tls/tls_server.hpp"
#include "util/result.hpp"

namespace sve {

struct NodeOptions {
  std::string data_dir;
  HostPortAddress admin{"127.0.0.1", 10810};
  HostPortAddress nbd{"127.0.0.1", 10809};
  // The iSCSI target (docs/iscsi.md): off without an address; its name
  // (empty: iqn.2026-12.org.sve:<configuration id>).
  std::optional<HostPortAddress> iscsi;
  std::string iscsi_target;
  unsigned cores = 1;
  CoreIoConfig core_io;  // per core
  uint64_t cache_bytes = 128ull << 20;  // the node's cache, shared out among its cores
  bool pin = true;       // pin each core's reactor thread to a CPU
  // How long an idle reactor polls before it sleeps (reactor_scheduler.hpp).
  unsigned poll_us = 0;
  size_t max_connections = 1024;  // host connections, beyond which new ones are closed
  uint32_t handshake_timeout_ms = 30000;  // a host stalled in its handshake is closed
  // NBD over TLS (docs/security.md): STARTTLS with the pre-shared keys of
  // `tls_psk` (psktool's "identity:hexkey" lines) and/or the X.509
  // certificates in `tls_certificates`, as `tls` says.
  TlsMode tls = TlsMode::off;
  std::string tls_psk;
  std::string tls_certificates;
  // A cluster node: its cluster address and number. Without them the node
  // stands alone and keeps its model in the data dir.
  std::optional<HostPortAddress> cluster;
  uint32_t node_id = 0;
  std::string quorum_device;  // a shared device or file for exact-half tie-breaks
  uint64_t heartbeat_ms = 100;
  uint64_t lease_ms = 3000;
  uint64_t log_keep = 256;  // committed cluster events kept; older ones live in snapshots
  // Listening sockets handed down by the configuration process, which keeps
  // them open across restarts of this I/O process (hosts then wait in the
  // backlog rather than find the port closed); -1: bind the addresses.
  int admin_fd = -1;
  int nbd_fd = -1;
  int iscsi_fd = -1;
  bool supervised = false;  // a configuration process restarts this process
  // The chaos monkey answers only where it was asked for at start-up
  // (--enable-chaos): a fault injector is not for any client of the port.
  bool enable_chaos = false;
  // The REST API (node/rest_server.hpp): off without an address; HTTPS with
  // a certificate directory.
  std::optional<HostPortAddress> rest;
  std::string rest_certificates;
  // TLS on the admin API (io/tls/admin_tls.hpp): server-cert.pem and
  // server-key.pem; ca-cert.pem, if there, for the admin APIs this node
  // calls (node add). Empty: plain text.
  std::string admin_certificates;
  // A node alone: its first administrator (a securityadmin: name, then
  // password), made before the admin port opens if the node has none.
  std::optional<std::pair<std::string, std::string>> init_admin;
  // The cache's copies between partners on the data channel (io/channel/);
  // off: through the interconnect actor, as before it existed.
  bool data_channel = true;
  // Under one: asks it to wait this long before the next start.
  std::function<void(uint32_t ms)> hold_down;
};

class Node {
 public:
  // Binds the listeners first (a bad address changes nothing), then loads
  // the configuration and builds the stacks. The data dir must be locked.
  static Result<std::unique_ptr<Node>> start(const NodeOptions& options);
  ~Node();

  // Runs an admin request exactly as the admin API would.
  nlohmann::json admin(const nlohmann::json& request);
  // Stops the host ports (draining their requests), the actors, and syncs the
  // back-end devices.
  void stop();

  std::string nbd_url() const;
  // Per-core counters of the data path (scheduler, ring, pools), as JSON.
  nlohmann::json io_stats();
  // Throws unless every core and the cluster actor answer: what the
  // watchdog's keep-alives stand for.
  void check_health();
  std::string admin_address() const;

 private:
  Node();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

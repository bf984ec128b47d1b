#pragma once
// Which vdisks a client of a host port may reach (docs/security.md): the
// host it is, found by its TLS identity or its address, and the vdisks
// mapped to that host. A node with no hosts, listening on loopback, serves
// every vdisk to loopback clients (the demo, scripts on the node itself);
// once hosts exist, or when the listener is not on loopback, only mapped
// hosts get in.
#include <cstdint>
#include <optional>
#include <string>

#include "model/virt_map.hpp"

namespace sve {

struct HostClient {
  std::string address;       // the peer's numeric IP address
  std::string tls_identity;  // its TLS PSK identity or certificate name; empty: plain text
};

struct Access {
  bool every_vdisk = false;  // the loopback rule: no hosts yet
  const HostAccess* host = nullptr;  // (into the map it was resolved from)
  std::string why;  // a line for the log: who it is taken for, or why nothing
  // Whether `vdisk` is visible, and if so whether only for reading.
  std::optional<bool> read_only(uint32_t vdisk) const;
};

Access resolve_access(const VirtMap& map, const HostClient& client, bool listener_loopback);

// 127.0.0.0/8, ::1, or a v4-mapped loopback address.
bool is_loopback(const std::string& address);

}  // namespace sve

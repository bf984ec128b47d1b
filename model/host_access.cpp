// Which vdisks a client of a host port may reach (model/host_access.hpp).
#include "model/host_access.hpp"

#include "model/host_edits.hpp"

namespace sve {

bool is_loopback(const std::string& address) {
  AddressRange v4, v6;
  parse_address_range("127.0.0.0/8", v4);
  parse_address_range("::1", v6);
  return address_in_range(v4, address) || address_in_range(v6, address);
}

std::optional<bool> Access::read_only(uint32_t vdisk) const {
  if (every_vdisk) return false;
  if (!host) return std::nullopt;
  for (const auto& l : host->luns)
    if (l.vdisk == vdisk) return l.read_only;
  return std::nullopt;
}

Access resolve_access(const VirtMap& map, const HostClient& client, bool listener_loopback) {
  Access a;
  if (!client.tls_identity.empty()) {
    // An identity proven by TLS names its host, and nothing else does.
    for (const auto& h : map.hosts)
      if (h.nbd_identity == client.tls_identity) a.host = &h;
    a.why = a.host ? "host " + a.host->name + " (TLS identity " + client.tls_identity + ")"
                   : "TLS identity '" + client.tls_identity + "' is no host's";
    return a;
  }
  // By address: the most specific range of any host's.
  int best = -1;
  for (const auto& h : map.hosts)
    for (const auto& text : h.addresses) {
      AddressRange r;
      if (!parse_address_range(text, r) || !address_in_range(r, client.address)) continue;
      if (static_cast<int>(r.prefix) > best) {
        best = static_cast<int>(r.prefix);
        a.host = &h;
      }
    }
  if (a.host) {
    a.why = "host " + a.host->name + " (address " + client.address + ")";
  } else if (map.hosts.empty() && listener_loopback && is_loopback(client.address)) {
    a.every_vdisk = true;
    a.why = "a loopback client (no hosts defined)";
  } else {
    a.why = client.address + " is no host's" +
            (map.hosts.empty() ? " (no hosts defined: only loopback clients, on a loopback "
                                 "listener, reach the vdisks)"
                               : std::string());
  }
  return a;
}

}  // namespace sve

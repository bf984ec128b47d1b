#include "io/iscsi/iscsi_access.hpp"

#include <algorithm>

#include "model/host_access.hpp"
#include "model/host_edits.hpp"

namespace sve::iscsi {
namespace {

// The largest LUN REPORT LUNS can name with the addressing used here.
constexpr uint32_t kMaxLun = 0x3fff;

bool from_listed_address(const HostAccess& h, const std::string& address) {
  if (h.addresses.empty()) return true;
  for (const auto& text : h.addresses) {
    AddressRange r;
    if (parse_address_range(text, r) && address_in_range(r, address)) return true;
  }
  return false;
}

}  // namespace

IscsiAccess resolve_iscsi_access(const VirtMap& map, const IscsiClient& client,
                                 bool listener_loopback) {
  IscsiAccess a;
  const HostAccess* host = nullptr;
  for (const auto& h : map.hosts)
    if (!h.iqn.empty() && h.iqn == client.initiator) host = &h;
  if (host) {
    if (!from_listed_address(*host, client.address)) {
      a.policy.why = "host " + host->name + " (" + client.initiator + ") is not reached from " +
                     client.address;
      return a;
    }
    a.policy.allowed = true;
    a.policy.why = "host " + host->name + " (" + client.initiator + ")";
    a.policy.chap_secret = host->chap_secret;
    for (const auto& l : host->luns)
      if (l.lun <= kMaxLun)
        a.luns.push_back({static_cast<uint16_t>(l.lun), l.vdisk, l.read_only});
  } else if (map.hosts.empty() && listener_loopback && is_loopback(client.address)) {
    a.policy.allowed = true;
    a.policy.why = "a loopback initiator (no hosts defined)";
    std::vector<uint32_t> ids;
    for (const auto& [id, v] : map.volumes)
      if (!v.hidden) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (size_t i = 0; i < ids.size() && i <= kMaxLun; ++i)
      a.luns.push_back({static_cast<uint16_t>(i), ids[i], false});
  } else {
    a.policy.why = client.initiator + " is no host's" +
                   (map.hosts.empty() ? " (no hosts defined: only loopback initiators, on a "
                                        "loopback listener, log in)"
                                      : std::string());
    return a;
  }
  std::sort(a.luns.begin(), a.luns.end(),
            [](const LunEntry& x, const LunEntry& y) { return x.lun < y.lun; });
  return a;
}

}  // namespace sve::iscsi

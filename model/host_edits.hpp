#pragma once
// Hosts and their vdisk mappings in the model (SVC's mkhost, chhost,
// rmhost, mkvdiskhostmap, rmvdiskhostmap; docs/security.md): pure edits as
// model/edits.hpp's. Errors carry EINVAL, or EBUSY for a state that does
// not allow the change now.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "util/result.hpp"

namespace sve {

inline constexpr uint32_t kMaxHosts = 2048;         // SVC's limit per cluster
inline constexpr uint32_t kMaxLun = 16383;          // SAM's flat LUN space
inline constexpr size_t kMaxIdentityBytes = 255;    // a TLS PSK identity, a certificate name
inline constexpr size_t kMaxIqnBytes = 223;         // RFC 3720
inline constexpr size_t kMinChapSecretBytes = 12;   // RFC 7143's 96 bits
inline constexpr size_t kMaxChapSecretBytes = 255;
inline constexpr size_t kMaxHostAddresses = 16;

struct NewHost {
  std::string name;  // empty: hostN
  std::string nbd_identity;
  std::vector<std::string> addresses;
  std::string iqn;
};
// A host needs some way to be known: an NBD identity, an address or an IQN.
// Each of them names at most one host.
Result<HostConfig> create_host(ClusterModel& model, const NewHost& args);

struct HostChange {
  std::optional<std::string> nbd_identity;      // empty string: none
  std::optional<std::vector<std::string>> addresses;
  std::optional<std::string> iqn;               // empty string: none
  std::optional<std::string> chap_secret;       // empty string: none
};
Result<HostConfig> set_host(ClusterModel& model, const std::string& name,
                            const HostChange& change);
// Refused while vdisks are mapped to it, unless `force`: the mappings go too.
Status delete_host(ClusterModel& model, const std::string& name, bool force);

// `vdisk` is seen by `host` as LUN `lun` (the lowest free one if none).
// A vdisk mapped to another host already is shared only with `force` (the
// hosts must then coordinate their writes: a cluster file system).
struct NewHostMap {
  std::string vdisk;
  std::string host;
  std::optional<uint32_t> lun;
  bool read_only = false;
  bool force = false;
};
Result<HostMapConfig> map_vdisk(ClusterModel& model, const NewHostMap& args);
Status unmap_vdisk(ClusterModel& model, const std::string& vdisk, const std::string& host);

// Why vdisk `id` may not be deleted (mapped to a host); empty if it may.
std::string hostmap_blocks_delete(const ClusterModel& model, uint32_t vdisk);

// Parses "IP" or "IP/prefix" (IPv4 or IPv6); false if it is neither.
struct AddressRange {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  uint32_t prefix = 0;
};
bool parse_address_range(const std::string& text, AddressRange& out);
// Whether `peer` (a numeric IP address, v4 or v6, v4-mapped v6 as v4) is in it.
bool address_in_range(const AddressRange& range, const std::string& peer);

}  // namespace sve

#pragma once
// Who may log in to the iSCSI target and which LUNs it sees (docs/iscsi.md,
// docs/security.md): an initiator is the host whose IQN it names (`svectl
// host create NAME --iqn IQN`); a host that also lists addresses must be
// reached from one of them; a host with a CHAP secret (`svectl host chap`)
// must prove it. With no hosts at all, a listener on loopback lets loopback
// initiators in and shows them every vdisk, as for NBD. The LUNs are the
// host's mappings (`vdisk map --lun`).
#include <cstdint>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_login.hpp"
#include "model/virt_map.hpp"

namespace sve::iscsi {

struct IscsiClient {
  std::string initiator;  // the IQN it named at login
  std::string address;    // the peer's numeric IP address
};

struct LunEntry {
  uint16_t lun = 0;
  uint32_t vdisk = 0;
  bool read_only = false;
};

struct IscsiAccess {
  LoginPolicy policy;
  std::vector<LunEntry> luns;  // by LUN
};

IscsiAccess resolve_iscsi_access(const VirtMap& map, const IscsiClient& client,
                                 bool listener_loopback);

}  // namespace sve::iscsi

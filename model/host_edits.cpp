// Hosts and their vdisk mappings in the model (model/host_edits.hpp).
#include "model/host_edits.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace sve {
namespace {

Error bad(std::string message) { return make_error(std::move(message), EINVAL); }

// Printable ASCII, no ':' (the PSK file's separator), no space at either end.
bool valid_identity(const std::string& s) {
  if (s.empty() || s.size() > kMaxIdentityBytes || s.front() == ' ' || s.back() == ' ')
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != ':'; });
}

// iqn.YYYY-MM.reversed.domain[:anything], eui.<16 hex>, naa.<16 or 32 hex>,
// in the lower case RFC 3722 folds names to.
bool valid_iqn(const std::string& s) {
  if (s.size() > kMaxIqnBytes) return false;
  bool chars = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
  });
  if (!chars) return false;
  auto hex = [](const std::string& t) {
    return std::all_of(t.begin(), t.end(), [](char c) { return std::isxdigit(c) != 0; });
  };
  if (s.rfind("eui.", 0) == 0) return s.size() == 20 && hex(s.substr(4));
  if (s.rfind("naa.", 0) == 0) return (s.size() == 20 || s.size() == 36) && hex(s.substr(4));
  if (s.rfind("iqn.", 0) != 0 || s.size() < 13) return false;
  // iqn.YYYY-MM.x
  for (size_t i : {4u, 5u, 6u, 7u, 9u, 10u})
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return s[8] == '-' && s[11] == '.' && s[12] != '.' && s[12] != ':';
}

bool valid_secret(const std::string& s) {
  return s.size() >= kMinChapSecretBytes && s.size() <= kMaxChapSecretBytes &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

const HostConfig* holder(const ClusterModel& model, uint32_t except,
                         bool (*has)(const HostConfig&, const std::string&),
                         const std::string& value) {
  for (const auto& h : model.hosts)
    if (h.id != except && has(h, value)) return &h;
  return nullptr;
}

// The fields that say who a host is: valid, and naming no other host.
Status check_identities(const ClusterModel& model, const HostConfig& h) {
  if (!h.nbd_identity.empty()) {
    if (!valid_identity(h.nbd_identity))
      return bad("invalid NBD identity '" + h.nbd_identity + "': up to " +
                 std::to_string(kMaxIdentityBytes) + " printable characters, no ':'");
    if (auto* o = holder(model, h.id, [](const HostConfig& x, const std::string& v) {
          return x.nbd_identity == v; }, h.nbd_identity))
      return bad("NBD identity '" + h.nbd_identity + "' is host '" + o->name + "''s already");
  }
  if (!h.iqn.empty()) {
    if (!valid_iqn(h.iqn))
      return bad("invalid iSCSI name '" + h.iqn +
                 "': expected iqn.YYYY-MM.domain[:id], eui.<16 hex> or naa.<16|32 hex>, lower case");
    if (auto* o = holder(model, h.id, [](const HostConfig& x, const std::string& v) {
          return x.iqn == v; }, h.iqn))
      return bad("iSCSI name '" + h.iqn + "' is host '" + o->name + "''s already");
  }
  if (h.addresses.size() > kMaxHostAddresses)
    return bad("a host has at most " + std::to_string(kMaxHostAddresses) + " addresses");
  for (size_t i = 0; i < h.addresses.size(); ++i) {
    const std::string& a = h.addresses[i];
    AddressRange range;
    if (!parse_address_range(a, range))
      return bad("invalid address '" + a + "': expected an IP address, or IP/prefix");
    if (std::count(h.addresses.begin(), h.addresses.end(), a) > 1)
      return bad("address '" + a + "' is given twice");
    if (auto* o = holder(model, h.id, [](const HostConfig& x, const std::string& v) {
          return std::count(x.addresses.begin(), x.addresses.end(), v) > 0; }, a))
      return bad("address '" + a + "' is host '" + o->name + "''s already");
  }
  if (!h.chap_secret.empty() && !valid_secret(h.chap_secret))
    return bad("a CHAP secret is " + std::to_string(kMinChapSecretBytes) + " to " +
               std::to_string(kMaxChapSecretBytes) + " printable characters, no spaces");
  return ok_status();
}

HostMapConfig* find_map(ClusterModel& model, uint32_t host, uint32_t vdisk) {
  for (auto& m : model.hostmaps)
    if (m.host == host && m.vdisk == vdisk) return &m;
  return nullptr;
}

}  // namespace

bool parse_address_range(const std::string& text, AddressRange& out) {
  std::string ip = text;
  std::optional<uint32_t> prefix;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    ip = text.substr(0, slash);
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    prefix = static_cast<uint32_t>(std::stoul(p));
  }
  AddressRange r;
  if (inet_pton(AF_INET, ip.c_str(), r.bytes) == 1) {
    r.family = AF_INET;
    r.prefix = prefix.value_or(32);
    if (r.prefix > 32) return false;
  } else if (inet_pton(AF_INET6, ip.c_str(), r.bytes) == 1) {
    r.family = AF_INET6;
    r.prefix = prefix.value_or(128);
    if (r.prefix > 128) return false;
  } else {
    return false;
  }
  out = r;
  return true;
}

bool address_in_range(const AddressRange& range, const std::string& peer) {
  uint8_t bytes[16] = {};
  int family = 0;
  if (inet_pton(AF_INET, peer.c_str(), bytes) == 1) {
    family = AF_INET;
  } else if (inet_pton(AF_INET6, peer.c_str(), bytes) == 1) {
    family = AF_INET6;
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, kMapped, 12) == 0) {  // ::ffff:a.b.c.d is a.b.c.d
      std::memmove(bytes, bytes + 12, 4);
      family = AF_INET;
    }
  }
  if (family != range.family) return false;
  uint32_t full = range.prefix / 8, rest = range.prefix % 8;
  if (std::memcmp(bytes, range.bytes, full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
  return (bytes[full] & mask) == (range.bytes[full] & mask);
}

Result<HostConfig> create_host(ClusterModel& model, const NewHost& args) {
  if (model.hosts.size() >= kMaxHosts)
    return make_error("the cluster has " + std::to_string(kMaxHosts) + " hosts, the most it may",
                      ENOSPC);
  if (args.nbd_identity.empty() && args.addresses.empty() && args.iqn.empty())
    return bad("say how the host is known: --nbd-identity ID, --address IP[/PREFIX] or --iqn IQN");
  HostConfig h;
  h.id = model.next_id;
  h.name = args.name.empty() ? "host" + std::to_string(h.id) : args.name;
  if (model.find_host(h.name)) return bad("host '" + h.name + "' exists");
  h.nbd_identity = args.nbd_identity;
  h.addresses = args.addresses;
  h.iqn = args.iqn;
  if (auto st = check_identities(model, h); !st) return st.error();
  model.next_id++;
  model.hosts.push_back(h);
  return h;
}

Result<HostConfig> set_host(ClusterModel& model, const std::string& name,
                            const HostChange& change) {
  HostConfig* h = model.find_host(name);
  if (!h) return bad("no host '" + name + "'");
  HostConfig next = *h;
  if (change.nbd_identity) next.nbd_identity = *change.nbd_identity;
  if (change.addresses) next.addresses = *change.addresses;
  if (change.iqn) next.iqn = *change.iqn;
  if (change.chap_secret) next.chap_secret = *change.chap_secret;
  if (next.nbd_identity.empty() && next.addresses.empty() && next.iqn.empty())
    return bad("host '" + name + "' would have no way to be known: keep an NBD identity, an "
               "address or an iSCSI name");
  if (auto st = check_identities(model, next); !st) return st.error();
  *h = std::move(next);
  return *h;
}

Status delete_host(ClusterModel& model, const std::string& name, bool force) {
  HostConfig* h = model.find_host(name);
  if (!h) return bad("no host '" + name + "'");
  auto mapped = std::count_if(model.hostmaps.begin(), model.hostmaps.end(),
                              [&](const HostMapConfig& m) { return m.host == h->id; });
  if (mapped && !force)
    return make_error("host '" + name + "' has " + std::to_string(mapped) +
                          " vdisks mapped: unmap them, or delete it with --force",
                      EBUSY);
  uint32_t id = h->id;
  std::erase_if(model.hostmaps, [&](const HostMapConfig& m) { return m.host == id; });
  model.hosts.erase(model.hosts.begin() + (h - model.hosts.data()));
  return ok_status();
}

Result<HostMapConfig> map_vdisk(ClusterModel& model, const NewHostMap& args) {
  VdiskConfig* v = model.find_vdisk(args.vdisk);
  if (!v || v->bitmap_of) return bad("no vdisk '" + args.vdisk + "'");
  HostConfig* h = model.find_host(args.host);
  if (!h) return bad("no host '" + args.host + "'");
  if (find_map(model, h->id, v->id))
    return bad("vdisk '" + v->name + "' is mapped to host '" + h->name + "' already");
  if (!args.force)
    for (const auto& m : model.hostmaps)
      if (m.vdisk == v->id)
        return make_error("vdisk '" + v->name + "' is mapped to host '" +
                              model.find_host(m.host)->name +
                              "' already: map it to another host too only if they coordinate "
                              "their writes (a cluster file system), with --force",
                          EBUSY);
  auto taken = [&](uint32_t lun) {
    return std::any_of(model.hostmaps.begin(), model.hostmaps.end(),
                       [&](const HostMapConfig& m) { return m.host == h->id && m.lun == lun; });
  };
  HostMapConfig m;
  m.host = h->id;
  m.vdisk = v->id;
  m.read_only = args.read_only;
  if (args.lun) {
    if (*args.lun > kMaxLun) return bad("LUN must be 0.." + std::to_string(kMaxLun));
    if (taken(*args.lun))
      return bad("host '" + h->name + "' has LUN " + std::to_string(*args.lun) + " already");
    m.lun = *args.lun;
  } else {
    while (m.lun <= kMaxLun && taken(m.lun)) ++m.lun;
    if (m.lun > kMaxLun)
      return make_error("host '" + h->name + "' has every LUN taken", ENOSPC);
  }
  model.hostmaps.push_back(m);
  return m;
}

Status unmap_vdisk(ClusterModel& model, const std::string& vdisk, const std::string& host) {
  VdiskConfig* v = model.find_vdisk(vdisk);
  if (!v || v->bitmap_of) return bad("no vdisk '" + vdisk + "'");
  HostConfig* h = model.find_host(host);
  if (!h) return bad("no host '" + host + "'");
  HostMapConfig* m = find_map(model, h->id, v->id);
  if (!m) return bad("vdisk '" + vdisk + "' is not mapped to host '" + host + "'");
  model.hostmaps.erase(model.hostmaps.begin() + (m - model.hostmaps.data()));
  return ok_status();
}

std::string hostmap_blocks_delete(const ClusterModel& model, uint32_t vdisk) {
  for (const auto& m : model.hostmaps)
    if (m.vdisk == vdisk) {
      const HostConfig* h = model.find_host(m.host);
      return "it is mapped to host '" + (h ? h->name : std::to_string(m.host)) +
             "': unmap it first (vdisk unmap VDISK HOST)";
    }
  return {};
}

}  // namespace sve

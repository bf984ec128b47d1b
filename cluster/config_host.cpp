// Hosts and vdisk-to-host mappings (docs/security.md): the admin commands.
// A CHAP secret is kept in the model and never shown: `host show` says
// only whether one is set.
#include "cluster/config_args.hpp"
#include "cluster/config_service.hpp"
#include "model/host_edits.hpp"

namespace sve {

using nlohmann::json;
using namespace config_args;

namespace {

std::optional<std::string> text_arg(const json& args, const char* key) {
  if (!args.contains(key) || !args[key].is_string()) return std::nullopt;
  return args[key].get<std::string>();
}

std::optional<std::vector<std::string>> texts_arg(const json& args, const char* key) {
  if (!args.contains(key) || !args[key].is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& e : args[key])
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

}  // namespace

json ConfigService::describe_host(const HostConfig& h) const {
  json vdisks = json::array();
  for (const auto& m : config_.hostmaps) {
    if (m.host != h.id) continue;
    const VdiskConfig* v = config_.find_vdisk(m.vdisk);
    vdisks.push_back({{"vdisk", v ? v->name : "?"}, {"lun", m.lun}, {"read_only", m.read_only}});
  }
  return {{"name", h.name},
          {"id", h.id},
          {"nbd_identity", h.nbd_identity},
          {"addresses", h.addresses},
          {"iqn", h.iqn},
          {"chap", !h.chap_secret.empty()},
          {"vdisks", vdisks}};
}

json ConfigService::vdisk_hosts(uint32_t vdisk) const {
  json hosts = json::array();
  for (const auto& m : config_.hostmaps) {
    if (m.vdisk != vdisk) continue;
    const HostConfig* h = config_.find_host(m.host);
    hosts.push_back({{"host", h ? h->name : "?"}, {"lun", m.lun}, {"read_only", m.read_only}});
  }
  return hosts;
}

Result<json> ConfigService::host_command(const std::string& cmd, const json& args) {
  if (cmd == "host.list") {
    json out = json::array();
    for (const auto& h : config_.hosts) out.push_back(describe_host(h));
    return out;
  }
  auto name = get_name(args, "name");
  if (!name) return name.error();
  if (cmd == "host.show") {
    if (HostConfig* h = config_.find_host(name.value())) return describe_host(*h);
    return bad("no host '" + name.value() + "'");
  }
  std::optional<HostConfig> after;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    Result<HostConfig> r = bad("unknown command '" + cmd + "'");
    if (cmd == "host.create") {
      NewHost want;
      want.name = name.value();
      want.nbd_identity = text_arg(args, "nbd_identity").value_or("");
      want.addresses = texts_arg(args, "addresses").value_or(std::vector<std::string>{});
      want.iqn = text_arg(args, "iqn").value_or("");
      r = create_host(next, want);
    } else if (cmd == "host.set") {
      HostChange change;
      change.nbd_identity = text_arg(args, "nbd_identity");
      change.addresses = texts_arg(args, "addresses");
      change.iqn = text_arg(args, "iqn");
      if (!change.nbd_identity && !change.addresses && !change.iqn)
        return bad("say what to set: --nbd-identity ID, --address IP[/PREFIX] (again for more; "
                   "--no-address for none) or --iqn IQN");
      r = set_host(next, name.value(), change);
    } else if (cmd == "host.chap") {
      HostChange change;
      change.chap_secret = text_arg(args, "secret");
      if (!change.chap_secret) return bad("missing argument 'secret' (empty to remove it)");
      r = set_host(next, name.value(), change);
    } else if (cmd == "host.delete") {
      return delete_host(next, name.value(), args.value("force", false));
    }
    if (!r) return r.error();
    after = r.value();
    return ok_status();
  });
  if (!st) return st.error();
  if (!after) return json{{"name", name.value()}, {"deleted", true}};
  return describe_host(*after);
}

// vdisk map / unmap: SVC's mkvdiskhostmap and rmvdiskhostmap.
Result<json> ConfigService::vdisk_mapping(const std::string& cmd, const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  auto host = get_name(args, "host");
  if (!host) return host.error();
  auto st = commit_change([&](ClusterModel& next) -> Status {
    if (cmd == "vdisk.unmap") return unmap_vdisk(next, name.value(), host.value());
    NewHostMap want;
    want.vdisk = name.value();
    want.host = host.value();
    if (args.contains("lun")) want.lun = args["lun"].get<uint32_t>();
    want.read_only = args.value("read_only", false);
    want.force = args.value("force", false);
    auto m = map_vdisk(next, want);
    if (!m) return m.error();
    return ok_status();
  });
  if (!st) return st.error();
  const VdiskConfig* v = config_.find_vdisk(name.value());
  return json{{"name", name.value()}, {"hosts", v ? vdisk_hosts(v->id) : json::array()}};
}

}  // namespace sve

// Fuzz target: one admin request line. It is refused with a line, or
// accepted as a request that is accepted again once re-serialized; a
// host.create the schema let through goes into the host edits, which take
// any names, identities and addresses without crashing and never make two
// hosts known the same way.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/admin_schema.hpp"
#include "model/host_edits.hpp"

using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto request = sve::parse_admin_request(line);
  if (!request) {
    if (request.error().message.empty()) std::abort();  // a refusal says why
    return 0;
  }
  const json& r = request.value();
  if (!sve::check_admin_request(r)) std::abort();
  auto again = sve::parse_admin_request(r.dump());
  if (!again || again.value() != r) std::abort();
  if (sve::admin_command(r) == "host.create") {
    sve::ClusterModel model;
    sve::NewHost host;
    host.name = r["name"].get<std::string>();
    host.nbd_identity = r.value("nbd_identity", "");
    host.iqn = r.value("iqn", "");
    if (r.contains("addresses"))
      for (const auto& a : r["addresses"]) host.addresses.push_back(a.get<std::string>());
    bool first = static_cast<bool>(sve::create_host(model, host));
    host.name += "2";  // another host, known the same ways: refused
    if (sve::create_host(model, host) && first) std::abort();
    for (const auto& a : host.addresses) {
      sve::AddressRange range;
      if (sve::parse_address_range(a, range) && range.prefix > 128) std::abort();
    }
  }
  return 0;
}

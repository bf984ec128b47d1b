#pragma once
// The client side of the admin API, used by svectl and the tests.
#include <string>

#include <nlohmann/json.hpp>

#include "admin/admin_stream.hpp"
#include "hw/port/tcp.hpp"
#include "util/result.hpp"

namespace sve {

// Credentials every later admin_call sends with its request (svectl's
// --user, or its saved session token): {"user", "password"} or {"token"};
// null: none.
void set_admin_credentials(nlohmann::json auth);

// How every later admin_call reaches the node: over `secure` (TLS, as
// svectl --tls-ca sets it up), or in plain TCP when it is empty.
void set_admin_transport(AdminStreamConnect secure);

// Sends one request and returns the node's reply object; `timeout_ms` (0:
// none) bounds each wait for the node.
Result<nlohmann::json> admin_call(const HostPortAddress& address,
                                  const nlohmann::json& request, int timeout_ms = 0);

}  // namespace sve

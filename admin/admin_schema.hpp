#pragma once
// What the admin API accepts: every command, the fields it takes, and each
// field's type and range. A request is checked here, as a whole, before any
// handler reads it, so that a handler may read its fields without asking
// again: a malformed, wrong-typed or out-of-range request is refused with
// one line naming the field, and nothing behind the port sees it.
//
// The configuration process checks each request before relaying it, and
// the I/O process checks it again (it also runs alone, --single-process).
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/result.hpp"

namespace sve {

// Parses one request line and checks it against the table. The error is
// the line to send back.
Result<nlohmann::json> parse_admin_request(std::string_view line);
Status check_admin_request(const nlohmann::json& request);

// The command of a request that passed the check.
inline std::string admin_command(const nlohmann::json& request) {
  return request["cmd"].get<std::string>();
}

// The reply to a refused request: {"ok": false, "error": message}.
std::string admin_error(const std::string& message);

}  // namespace sve

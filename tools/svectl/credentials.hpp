#pragma once
// svectl's side of administrators' credentials (docs/security.md): a
// password given by --user with $SVE_PASSWORD or a prompt, or the session
// token `svectl login` saved for that admin address.
#include <optional>
#include <string>

#include "hw/port/tcp.hpp"
#include "util/result.hpp"

namespace sve {

// $SVE_TOKEN_FILE, else $XDG_CONFIG_HOME/sve/token-HOST_PORT, else
// ~/.config/sve/token-HOST_PORT.
std::string token_path(const HostPortAddress& admin);
// $SVE_PASSWORD, else asked on the terminal without echo.
Result<std::string> read_password(const std::string& prompt);
// Written with mode 0600 (its folder 0700).
Status save_token(const HostPortAddress& admin, const std::string& token);
std::optional<std::string> saved_token(const HostPortAddress& admin);
bool forget_token(const HostPortAddress& admin);

}  // namespace sve

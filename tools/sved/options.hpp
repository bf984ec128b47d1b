#pragma once
#include <string>
#include <vector>

#include "node/node.hpp"
#include "util/result.hpp"

namespace sve {

struct SvedOptions {
  NodeOptions node;
  std::string log_level = "info";
  bool demo = false;  // create the embedded default configuration if empty
  // A node alone: its first administrator (a securityadmin), made at start
  // if it has none, with the password in $SVE_INIT_ADMIN_PASSWORD.
  std::string init_admin;
  // One process (no configuration process watching and restarting it).
  bool single_process = false;
  uint64_t watchdog_ms = 5000;  // an I/O process silent this long is hung
  // Set by the configuration process on the I/O process it starts.
  bool io_process = false;
  int watchdog_fd = -1;
};

// argv, with --config FILE read in place (its options first).
Result<SvedOptions> parse_sved_options(int argc, char** argv);
// The options alone, without the program name.
Result<SvedOptions> parse_sved_args(const std::vector<std::string>& args);
// The options and what each does (--help).
std::string sved_usage();

}  // namespace sve

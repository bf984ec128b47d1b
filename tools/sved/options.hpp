#pragma once
#include <string>
#include <vector>

#include "actors/node.hpp"
#include "util/result.hpp"

namespace sve {

struct SvedOptions {
  NodeOptions node;
  std::string log_level = "info";
  bool demo = false;  // create the embedded default configuration if empty
};

// argv, with --config FILE read in place (its options first).
Result<SvedOptions> parse_sved_options(int argc, char** argv);
// The options alone, without the program name.
Result<SvedOptions> parse_sved_args(const std::vector<std::string>& args);
extern const char* kSvedUsage;

}  // namespace sve

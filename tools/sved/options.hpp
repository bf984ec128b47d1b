#pragma once
#include <string>

#include "actors/node.hpp"
#include "util/result.hpp"

namespace sve {

struct SvedOptions {
  NodeOptions node;
  std::string log_level = "info";
  bool demo = false;  // create the embedded default configuration if empty
};

Result<SvedOptions> parse_sved_options(int argc, char** argv);
extern const char* kSvedUsage;

}  // namespace sve

#pragma once
#include <string>
#include <vector>

#include "hw/port/tcp.hpp"

namespace sve {

// svectl chaos run: the chaos monkey on every node named, a verifying
// workload through NBD meanwhile, then the report. Returns the exit code:
// 0 only if no acknowledged write was lost and no read was wrong.
int run_chaos(const HostPortAddress& admin, const std::vector<std::string>& args, bool as_json);

}  // namespace sve

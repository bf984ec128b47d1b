#pragma once
#include "tools/sved/options.hpp"

namespace sve {

// The I/O process: the node itself (facilities, cluster RSMs, I/O actors),
// until SIGTERM. Under a configuration process it feeds that process's
// watchdog; alone, systemd's. Returns the exit code.
int run_io_process(const SvedOptions& options);

}  // namespace sve

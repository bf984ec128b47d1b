#pragma once
#include "tools/sved/options.hpp"

namespace sve {

// The configuration process, as the paper splits a node: it owns the
// node's listening sockets and the admin API, starts the I/O process as its
// child, watches it (hw/watchdog), and when it dies or hangs saves the
// non-volatile state it left and starts another, which rejoins the cluster
// on its own. `argv` is re-run for the child. Returns the exit code.
int run_supervisor(const SvedOptions& options, int argc, char** argv);

}  // namespace sve

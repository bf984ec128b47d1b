#pragma once
// svectl shell: the actor debug shell. Connects to a node's admin API and
// shows its actors (name, kind, core, mailbox depth, messages handled, time
// since the last one) and each actor's own state; reads, changes nothing.
#include <string>
#include <vector>

#include "hw/port/tcp.hpp"

namespace sve {

// `args`: what follows "shell" ([--node HOST:PORT] [-c COMMAND]). Returns
// the exit status: with -c, of that one command; else of the session.
int run_shell(HostPortAddress node, const std::vector<std::string>& args, bool as_json);

}  // namespace sve

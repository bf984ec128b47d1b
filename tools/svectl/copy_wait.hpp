#pragma once
#include <nlohmann/json.hpp>

#include "hw/port/tcp.hpp"

namespace sve {

// svectl fcmap start|show NAME --wait and fcconsistgrp start|show NAME
// --wait: follows the copy until every grain is copied, drawing a progress
// bar with its rate and the time left on a terminal, and a plain line per
// percent (at most one a second) otherwise. `request` is the command that
// was sent. Returns the exit code: 0 once copied (or deleted by autodelete
// once copied), 1 if the copy stopped or was suspended, or the node could
// not be asked.
int wait_for_copy(const HostPortAddress& admin, const nlohmann::json& request, bool as_json);

// fcmap start NAME --prep and fcconsistgrp start NAME --prep (SVC's
// startfcmap -prep): prepares the mapping or group and waits until it is
// prepared (its caches emptied), so that the start can follow. Returns 0,
// or 1 with the reason said on stderr.
int prepare_first(const HostPortAddress& admin, const nlohmann::json& request);

}  // namespace sve

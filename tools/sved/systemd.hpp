#pragma once
// The systemd service protocol, for Type=notify units: readiness, stopping
// and watchdog keep-alives sent to $NOTIFY_SOCKET (sd_notify(3)'s datagram
// protocol: a few lines on a Unix socket, so no library is needed).
// Without $NOTIFY_SOCKET (not started by systemd) it does nothing.
#include <cstdint>
#include <string>

namespace sve {

// Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...").
void notify_service_manager(const std::string& state);

// How often to send WATCHDOG=1: half of $WATCHDOG_USEC (WatchdogSec=), in
// milliseconds; 0 when no watchdog was asked for.
uint64_t watchdog_interval_ms();

}  // namespace sve

#pragma once
// SendTargets (RFC 7143 appendix C): the answer to a Text Request's
// SendTargets key, in a discovery session ("All": every target with every
// portal) or a normal one (empty: the session's own target). SVE has one
// target per cluster, reached through a portal on each node, each node its
// own portal group (the ALUA target port groups to come).
#include <cstdint>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_login.hpp"
#include "io/iscsi/iscsi_text.hpp"

namespace sve::iscsi {

struct Portal {
  std::string address;  // an IPv4 or IPv6 address (no brackets)
  uint16_t port = 3260;
  uint16_t group = 1;   // the portal group tag
};

// The pairs to answer with: TargetName, then a TargetAddress per portal
// ("address:port,group", IPv6 in brackets). An empty answer for a target
// that is not this one; `error` for a value the session may not ask
// (All outside a discovery session).
struct SendTargetsAnswer {
  std::vector<TextPair> pairs;
  std::string error;
};
SendTargetsAnswer send_targets(const std::string& value, SessionType type,
                               const std::string& target_name,
                               const std::vector<Portal>& portals);

}  // namespace sve::iscsi

#include "io/iscsi/iscsi_discovery.hpp"

namespace sve::iscsi {

SendTargetsAnswer send_targets(const std::string& value, SessionType type,
                               const std::string& target_name,
                               const std::vector<Portal>& portals) {
  SendTargetsAnswer a;
  if (value == "All") {
    if (type != SessionType::discovery) {
      a.error = "SendTargets=All outside a discovery session";
      return a;
    }
  } else if (value.empty()) {
    if (type != SessionType::normal) {
      a.error = "an empty SendTargets outside a normal session";
      return a;
    }
  } else if (value != target_name) {
    return a;  // not a target here: nothing to report
  }
  a.pairs.push_back({"TargetName", target_name});
  for (const Portal& p : portals) {
    bool v6 = p.address.find(':') != std::string::npos;
    std::string host = v6 ? "[" + p.address + "]" : p.address;
    a.pairs.push_back({"TargetAddress", host + ":" + std::to_string(p.port) + "," +
                                            std::to_string(p.group)});
  }
  return a;
}

}  // namespace sve::iscsi

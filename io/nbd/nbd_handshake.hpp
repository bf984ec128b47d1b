#pragma once
// The NBD fixed-newstyle handshake on a connected socket: option haggling
// (EXPORT_NAME, LIST, INFO, GO, ABORT) until the client picks an export or
// leaves. Malformed input ends this connection only.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sve::nbd {

struct ExportInfo {
  uint32_t volume = 0;  // the vdisk id requests are addressed to
  uint64_t size_bytes = 0;
  std::string name;
};

class ExportCatalog {
 public:
  virtual ~ExportCatalog() = default;
  virtual std::optional<ExportInfo> find(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // Non-empty: no export is served now, and this says why.
  virtual std::string refusal() const { return {}; }
};

struct HandshakeResult {
  bool go = false;  // false: the connection is to be closed
  ExportInfo chosen;
  std::string reason;  // why it ended without an export, for the log
};

// Flags SVE advertises for every export: flush, FUA, trim, write-zeroes, and
// multi-conn (a flush on any connection covers writes completed on all of
// them, because it flushes the shared back-end devices).
uint16_t transmission_flags();

HandshakeResult run_handshake(int fd, const ExportCatalog& catalog);

}  // namespace sve::nbd

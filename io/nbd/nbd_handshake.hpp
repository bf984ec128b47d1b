#pragma once
// The NBD fixed-newstyle handshake on a connected socket: option haggling
// (EXPORT_NAME, LIST, INFO, GO, ABORT, STARTTLS, STRUCTURED_REPLY, LIST and
// SET META_CONTEXT) until the client picks an export or leaves. Malformed
// input earns an error reply or ends this connection only.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/tls/tls_server.hpp"

namespace sve::nbd {

struct ExportInfo {
  uint32_t volume = 0;  // the vdisk id requests are addressed to
  uint64_t size_bytes = 0;
  std::string name;
  std::string description;  // for NBD_INFO_DESCRIPTION (nbdinfo shows it)
  bool read_only = false;   // hosts may only read it (the stack refuses writes)
  // Its requests must reach the core that serves it (vdisk id % cores):
  // thin, or in a point-in-time copy mapping.
  bool partitioned = false;
};

class ExportCatalog {
 public:
  virtual ~ExportCatalog() = default;
  virtual std::optional<ExportInfo> find(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // Non-empty: no export is served now, and this says why.
  virtual std::string refusal() const { return {}; }
  // The client proved this TLS identity (STARTTLS): what it may see may
  // change from here on.
  virtual void identify(const std::string& /*tls_identity*/) {}
};

// The id SVE gives base:allocation when a client selects it.
inline constexpr uint32_t kAllocationContextId = 1;

// What the client and SVE agreed on for the transmission phase.
struct Negotiated {
  bool structured = false;          // structured replies
  uint32_t allocation_context = 0;  // base:allocation's id if selected, else 0
};

struct HandshakeResult {
  bool go = false;  // false: the connection is to be closed
  ExportInfo chosen;
  std::string reason;  // why it ended without an export, for the log
  Negotiated negotiated;
  std::shared_ptr<TlsSession> tls;  // the session over the socket, if STARTTLS was done
};

// Flags SVE advertises for every export: flush, FUA, trim, write-zeroes,
// cache, fast zero, multi-conn (a flush on any connection covers writes
// completed on all of them, because it flushes the shared back-end
// devices), with structured replies the DF flag, and read-only for a
// read-only vdisk.
uint16_t transmission_flags(bool structured = false, bool read_only = false);

// `tls`: the credentials STARTTLS uses (none: TLS is off), as `mode` says.
HandshakeResult run_handshake(int fd, ExportCatalog& catalog, const TlsServer* tls = nullptr,
                              TlsMode mode = TlsMode::off);

}  // namespace sve::nbd

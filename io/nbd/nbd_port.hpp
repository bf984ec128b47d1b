#pragma once
// The NBD host port: accepts TCP connections and runs each handshake on a
// short-lived thread (the slow, blocking part), then hands the socket to one
// core (round-robin), where an NbdSession serves it on that core's ring and
// submits to that core's facility stack.
#include <functional>
#include <memory>
#include <vector>

#include "hw/port/host_port.hpp"
#include "io/nbd/nbd_session.hpp"
#include "io/protocol.hpp"
#include "io/reactor/core_io.hpp"
#include "io/tls/tls_server.hpp"
#include "util/fd.hpp"

namespace sve {

// Runs a task on a core's reactor thread.
using CorePost = std::function<void(unsigned core, std::function<void()> task)>;

struct NbdCore {
  CoreIo* io = nullptr;
  IoServer* top = nullptr;  // the top of the core's facility stack
};

class NbdPort final : public HostPort {
 public:
  // Beyond `max_connections` a new connection is closed at once: every
  // connection costs a session and, while it handshakes, a thread.
  NbdPort(UniqueFd listener, std::string address, std::vector<NbdCore> cores, CorePost post,
          nbd::SessionLimits limits = {}, size_t max_connections = 1024);
  ~NbdPort() override;

  std::string describe() const override;
  void start() override;
  void stop() override;
  void set_exports(std::shared_ptr<const VirtMap> map) override;
  // Serve every connection of a vdisk on one core, the core whose cache
  // partition owns it (volume id modulo cores), instead of spreading
  // connections round-robin. Set before start().
  void place_by_volume(bool on);
  // STARTTLS with these credentials (docs/security.md): the handshake's
  // thread runs the TLS handshake; the session then speaks TLS records on
  // its core's ring. Set before start().
  void set_tls(std::shared_ptr<const TlsServer> server, TlsMode mode);

  // How long the handshake may wait for the client at each step (a read
  // of its next option, a reply it does not take): a client that stalls
  // is closed, so that it holds no thread and no connection slot for long.
  // Set before start(); default 30 s.
  void set_handshake_timeout(uint32_t ms);

  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

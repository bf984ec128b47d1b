#pragma once
// The NBD host port: accepts TCP connections, runs the handshake, and gives
// each connection a front-end actor wired to the top of one core's facility
// stack (connections are spread over the cores round-robin).
#include <caf/fwd.hpp>

#include <memory>
#include <vector>

#include "hw/port/host_port.hpp"
#include "io/protocol.hpp"
#include "util/fd.hpp"

namespace sve {

class NbdPort final : public HostPort {
 public:
  // `stack_tops[i]` is where requests from connections on core i enter.
  NbdPort(caf::actor_system& sys, UniqueFd listener, std::string address,
          std::vector<std::shared_ptr<IoServer>> stack_tops);
  ~NbdPort() override;

  std::string describe() const override;
  void start() override;
  void stop() override;
  void set_exports(std::shared_ptr<const VirtMap> map) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sve

#pragma once
// Where a node's partners open their data channels (io/channel/): a TCP
// listener on the node's cluster host, on a port the kernel picks (the
// partners learn it through the interconnect). Its thread accepts a
// connection, runs the listener's half of the handshake (channel_auth.hpp:
// a valid hello, then the caller's proof that it holds the cluster key,
// within two seconds each), and hands the socket to the core the hello
// names; the core's data channel takes it from there. Any other caller is
// closed and counted. No CAF: the node says how a socket reaches a core.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "io/auth/cluster_key.hpp"
#include "io/channel/channel_wire.hpp"
#include "io/channel/frame_seal.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve::channel {

class ChannelListener {
 public:
  // Called on the listener's thread with a connected socket and its hello.
  using Deliver =
      std::function<void(UniqueFd socket, const FrameHeader& hello, const SessionKeys& keys)>;

  static Result<std::unique_ptr<ChannelListener>> open(const std::string& host,
                                                       std::shared_ptr<const ClusterKey> key,
                                                       Deliver deliver);
  ~ChannelListener();

  uint16_t port() const { return port_; }
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  ChannelListener() = default;
  void accept_loop();

  UniqueFd listener_;
  uint16_t port_ = 0;
  Deliver deliver_;
  std::shared_ptr<const ClusterKey> key_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace sve::channel

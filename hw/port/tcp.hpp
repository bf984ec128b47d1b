#pragma once
// TCP plumbing shared by the host ports and the admin interface.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve {

struct HostPortAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

// "HOST:PORT", ":PORT" or "PORT".
Result<HostPortAddress> parse_address(const std::string& text);

Result<UniqueFd> listen_tcp(const HostPortAddress& address);
// `timeout_ms` > 0 bounds the connect (and stays the socket's send timeout).
Result<UniqueFd> connect_tcp(const HostPortAddress& address, int timeout_ms = 0);
// Small requests must not wait for Nagle + delayed ACK.
void set_nodelay(int fd);
// SO_RCVTIMEO and SO_SNDTIMEO of `fd`: a blocking read or write that waits
// longer fails (EAGAIN); 0: none.
void set_io_timeouts(int fd, uint32_t ms);
// Waits until a listening socket has a connection to accept (true), or
// `timeout_ms` passed (false). Accept loops check whether they should stop
// between waits rather than trust shutdown() to wake a blocked accept.
bool wait_acceptable(int fd, int timeout_ms);

// A host port's accept loop, on the caller's thread: each new connection
// (close-on-exec, TCP_NODELAY) goes to `accepted`, which returns false to
// stop. `stopping()` is asked between waits of 200 ms. Out of descriptors
// or memory, it waits 100 ms and tries again (the pending connection waits
// in the backlog); it returns when the listener fails. `name` is the
// port's, for the log.
void accept_connections(int listener, const char* name, const std::function<bool()>& stopping,
                        const std::function<bool(int fd)>& accepted);

// The numeric IP address of a connected socket's peer, or of the socket
// itself (a listener's); empty if it has none (not IP).
std::string peer_ip(int fd);
std::string local_ip(int fd);

// Both ends of a TCP connection over loopback (close-on-exec, TCP_NODELAY):
// first the end that connected, then the one accepted. For in-process
// pairs (sve-bench's two nodes, tests).
Result<std::pair<UniqueFd, UniqueFd>> loopback_tcp_pair();

// Blocking full-length socket I/O. recv_all returns false on EOF or error.
bool recv_all(int fd, void* out, size_t size);
bool send_all(int fd, const void* data, size_t size);

}  // namespace sve

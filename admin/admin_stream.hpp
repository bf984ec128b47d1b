#pragma once
// How the admin API's bytes travel on one connection when not in plain
// TCP: TLS (io/tls/admin_tls.hpp) when the node has admin certificates
// (sved --admin-certificates) and svectl trusts their CA (--tls-ca). admin/
// knows only this interface, so it needs no TLS library.
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>

#include "hw/port/tcp.hpp"
#include "util/result.hpp"

namespace sve {

class AdminStream {
 public:
  virtual ~AdminStream() = default;
  // Some bytes (blocks until some come): the count, 0 at the end of the
  // stream, -1 on an error.
  virtual ssize_t recv_some(void* out, size_t size) = 0;
  virtual bool send_all(const void* data, size_t size) = 0;
  // Bytes received and ready: recv_some returns at once (no need to wait
  // for the socket).
  virtual size_t buffered() const { return 0; }
};

// The server's side: the stream over accepted socket `fd` once its
// handshake is done, or why not.
using AdminStreamAccept = std::function<Result<std::unique_ptr<AdminStream>>(int fd)>;
// The client's side: the stream over `fd`, connected to `to`.
using AdminStreamConnect = std::function<Result<std::unique_ptr<AdminStream>>(
    int fd, const HostPortAddress& to, int timeout_ms)>;

}  // namespace sve

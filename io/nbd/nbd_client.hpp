#pragma once
// A blocking NBD client (fixed newstyle, NBD_OPT_GO, simple replies): what
// svectl's verifying workload speaks to a node's host port. Requests may be
// pipelined; the caller matches replies to requests by cookie.
#include <cstdint>
#include <optional>
#include <string>

#include "hw/port/tcp.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve {

class NbdClient {
 public:
  // Connects and negotiates `export_name`; every later receive gives up
  // after `timeout_ms` (the connection is then to be dropped).
  static Result<NbdClient> open(const HostPortAddress& address, const std::string& export_name,
                                int timeout_ms);

  uint64_t size() const { return size_; }
  bool send(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
            const void* payload = nullptr);

  struct Reply {
    uint32_t error = 0;
    uint64_t cookie = 0;
  };
  // The next reply's header; for a successful read, its data follows
  // (read_data). Empty when the connection failed or timed out.
  std::optional<Reply> reply();
  bool read_data(void* out, size_t length);

 private:
  UniqueFd fd_;
  uint64_t size_ = 0;
};

}  // namespace sve

// Fuzz target: whatever a client sends during the NBD handshake ends in an
// export chosen or the connection closed, never a crash or a hang. The
// input is what the client writes, then it closes its side.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "io/nbd/nbd_handshake.hpp"

using namespace sve;

namespace {

struct TwoExports final : nbd::ExportCatalog {
  std::optional<nbd::ExportInfo> find(const std::string& name) const override {
    if (name == "v" || name == "vd0") return nbd::ExportInfo{1, 1 << 20, name, "a vdisk", name == "v"};
    return std::nullopt;
  }
  std::vector<std::string> names() const override { return {"v", "vd0"}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;  // the server's replies must fit the socket buffer
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fds[1], data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);
  TwoExports catalog;
  nbd::HandshakeResult r = nbd::run_handshake(fds[0], catalog);
  if (r.go && !catalog.find(r.chosen.name)) std::abort();  // an export that is not there
  ::close(fds[0]);
  ::close(fds[1]);
  return 0;
}

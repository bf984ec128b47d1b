// Fuzz target: whatever a client sends during the NBD handshake ends in an
// export chosen or the connection closed, never a crash or a hang. The
// input is what the client writes, then it closes its side.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "hw/port/tcp.hpp"
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
  if (size > 16384) return 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  // Nobody reads the server's replies until the end: they must fit the
  // socket's buffer (hundreds of small replies, each taking far more of it
  // than its bytes: forced larger where allowed), and where they do not,
  // the server's write fails after a while, as NbdPort's handshake timeout
  // makes it do with a client that takes no replies.
  int big = 64 << 20;
  (void)::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  set_io_timeouts(fds[0], 2000);
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

// Fuzz target: a stream of NBD request headers, decoded as the session does
// and handed to the virtualization facility over a vdisk of three extents.
// Whatever a host sends, every piece that reaches the back end lies inside
// its mdisk, and every request completes exactly once.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "io/buffer/buffer.hpp"
#include "io/nbd/nbd_wire.hpp"
#include "virt/virtualizer.hpp"

using namespace sve;

namespace {

constexpr uint64_t kExtent = 1 << 20;
constexpr uint64_t kMdiskBytes = 8 * kExtent;

struct CheckedBackEnd final : IoServer {
  void submit(IoRequestPtr r) override {
    uint64_t end = r->offset + r->length;
    if (r->op != IoOp::flush && (end < r->offset || end > kMdiskBytes)) {
      std::fprintf(stderr, "piece outside its mdisk: %lu+%lu\n", (unsigned long)r->offset,
                   (unsigned long)r->length);
      std::abort();
    }
    complete(std::move(r), 0);
  }
};

struct Host final : IoClient {
  int done = 0;
  void io_done(IoRequestPtr) override { ++done; }
};

// The payload's memory: the facilities below the session only share the
// buffer, never touch it, so one region for every request keeps the
// campaign from spending its time zeroing up to 32 MiB per request.
boost::intrusive_ptr<Buffer> payload_of(uint32_t length) {
  static char* region = static_cast<char*>(std::malloc(nbd::kMaxPayloadBytes));
  iovec whole{region, length ? length : 1u};
  return Buffer::borrow(&whole, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckedBackEnd back;
  Virtualizer virt(back);
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = 1;
  v.name = "v";
  v.size_bytes = 3 * kExtent - 4096;
  v.extent_bytes = kExtent;
  v.extents = {{7, 5 * kExtent}, {7, 0}, {7, 2 * kExtent}};
  v.mdisks = {7};
  map->volumes[1] = v;
  virt.set_map(map);
  Host host;
  int sent = 0;
  for (size_t at = 0; at + nbd::kRequestBytes <= size && sent < 64; at += nbd::kRequestBytes) {
    nbd::Request q = nbd::decode_request(data + at);
    // The session's own checks: magic, and the largest payload it takes.
    if (q.magic != nbd::kRequestMagic) break;
    bool payload = q.type == nbd::kCmdWrite || q.type == nbd::kCmdRead;
    if (payload && q.length > nbd::kMaxPayloadBytes) break;
    auto r = make_request();
    r->op = q.type == nbd::kCmdWrite ? IoOp::write
            : q.type == nbd::kCmdRead ? IoOp::read
            : q.type == nbd::kCmdFlush ? IoOp::flush
            : q.type == nbd::kCmdTrim ? IoOp::trim
                                      : IoOp::write_zeroes;
    r->volume = q.cookie % 3 == 0 ? 2 : 1;  // now and then a vdisk that is not there
    r->offset = q.offset;
    r->length = q.length;
    if (payload) r->buffer = payload_of(q.length);
    r->client = &host;
    virt.submit(r);
    ++sent;
  }
  if (host.done != sent) {
    std::fprintf(stderr, "%d requests sent, %d completed\n", sent, host.done);
    std::abort();
  }
  return 0;
}

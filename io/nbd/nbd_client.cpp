#include "io/nbd/nbd_client.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "io/nbd/nbd_wire.hpp"

namespace sve {

Result<NbdClient> NbdClient::open(const HostPortAddress& address,
                                  const std::string& export_name, int timeout_ms) {
  auto fd = connect_tcp(address);
  if (!fd) return fd.error();
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd->get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto failed = [&](const std::string& why) {
    return make_error("NBD handshake with " + address.to_string() + ": " + why, EPROTO);
  };
  uint8_t hello[18];
  if (!recv_all(fd->get(), hello, sizeof hello)) return failed("no greeting");
  if (nbd::get_u64(hello) != nbd::kNbdMagic || nbd::get_u64(hello + 8) != nbd::kOptMagic)
    return failed("not an NBD newstyle server");
  std::vector<uint8_t> out;
  nbd::put_u32(out, nbd::kClientFixedNewstyle | nbd::kClientNoZeroes);
  // NBD_OPT_GO: the export name, no information requests.
  nbd::put_u64(out, nbd::kOptMagic);
  nbd::put_u32(out, nbd::kOptGo);
  nbd::put_u32(out, static_cast<uint32_t>(4 + export_name.size() + 2));
  nbd::put_u32(out, static_cast<uint32_t>(export_name.size()));
  out.insert(out.end(), export_name.begin(), export_name.end());
  nbd::put_u16(out, 0);
  if (!send_all(fd->get(), out.data(), out.size())) return failed("cannot send options");
  NbdClient client;
  for (;;) {
    uint8_t head[20];
    if (!recv_all(fd->get(), head, sizeof head)) return failed("no option reply");
    uint32_t type = nbd::get_u32(head + 12);
    uint32_t length = nbd::get_u32(head + 16);
    if (length > nbd::kMaxOptionBytes) return failed("oversized option reply");
    std::vector<uint8_t> data(length);
    if (length && !recv_all(fd->get(), data.data(), length)) return failed("short option reply");
    if (type == nbd::kRepAck) break;
    if (type & 0x80000000u)
      return make_error("export '" + export_name + "' refused by " + address.to_string() +
                            (data.empty() ? std::string() : ": " + std::string(data.begin(), data.end())),
                        ENOENT);
    if (type == nbd::kRepInfo && length >= 12 && nbd::get_u16(data.data()) == nbd::kInfoExport)
      client.size_ = nbd::get_u64(data.data() + 2);
  }
  client.fd_ = std::move(fd.value());
  return client;
}

bool NbdClient::send(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
                     const void* payload) {
  nbd::Request r;
  r.magic = nbd::kRequestMagic;
  r.type = type;
  r.cookie = cookie;
  r.offset = offset;
  r.length = length;
  uint8_t head[nbd::kRequestBytes];
  nbd::encode_request(r, head);
  if (!send_all(fd_.get(), head, sizeof head)) return false;
  return !payload || send_all(fd_.get(), payload, length);
}

std::optional<NbdClient::Reply> NbdClient::reply() {
  uint8_t head[nbd::kReplyBytes];
  if (!recv_all(fd_.get(), head, sizeof head)) return std::nullopt;
  if (nbd::get_u32(head) != nbd::kSimpleReplyMagic) return std::nullopt;
  return Reply{nbd::get_u32(head + 4), nbd::get_u64(head + 8)};
}

bool NbdClient::read_data(void* out, size_t length) { return recv_all(fd_.get(), out, length); }

}  // namespace sve

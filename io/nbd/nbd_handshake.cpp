#include "io/nbd/nbd_handshake.hpp"

#include "hw/port/tcp.hpp"
#include "io/nbd/nbd_wire.hpp"

namespace sve::nbd {
namespace {

bool send_bytes(int fd, const std::vector<uint8_t>& bytes) {
  return send_all(fd, bytes.data(), bytes.size());
}

bool reply(int fd, uint32_t option, uint32_t type, const std::vector<uint8_t>& data = {}) {
  return send_bytes(fd, encode_option_reply(option, type, data));
}

bool reply_error(int fd, uint32_t option, uint32_t type, const std::string& message) {
  return reply(fd, option, type, std::vector<uint8_t>(message.begin(), message.end()));
}

}  // namespace

uint16_t transmission_flags() {
  return kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendTrim | kTxSendWriteZeroes |
         kTxCanMultiConn;
}

HandshakeResult run_handshake(int fd, const ExportCatalog& catalog) {
  HandshakeResult result;
  std::vector<uint8_t> hello;
  put_u64(hello, kNbdMagic);
  put_u64(hello, kOptMagic);
  put_u16(hello, kFlagFixedNewstyle | kFlagNoZeroes);
  if (!send_bytes(fd, hello)) return {false, {}, "client left before the greeting"};

  uint8_t client_flags_raw[4];
  if (!recv_all(fd, client_flags_raw, 4)) return {false, {}, "client left"};
  uint32_t client_flags = get_u32(client_flags_raw);
  if (client_flags & ~(kClientFixedNewstyle | kClientNoZeroes))
    return {false, {}, "unknown client flags"};
  const bool no_zeroes = client_flags & kClientNoZeroes;

  for (;;) {
    uint8_t head[16];
    if (!recv_all(fd, head, sizeof head)) return {false, {}, "client left during options"};
    if (get_u64(head) != kOptMagic) return {false, {}, "bad option magic"};
    uint32_t option = get_u32(head + 8);
    uint32_t length = get_u32(head + 12);
    if (length > kMaxOptionBytes) return {false, {}, "option too large"};
    std::vector<uint8_t> data(length);
    if (length && !recv_all(fd, data.data(), length))
      return {false, {}, "client left during options"};

    switch (option) {
      case kOptExportName: {
        std::string name(data.begin(), data.end());
        auto info = catalog.find(name);
        // This old option has no error reply: the spec says to disconnect.
        if (!catalog.refusal().empty()) return {false, {}, catalog.refusal()};
        if (!info) return {false, {}, "unknown export '" + name + "'"};
        std::vector<uint8_t> out;
        put_u64(out, info->size_bytes);
        put_u16(out, transmission_flags());
        if (!no_zeroes) out.resize(out.size() + 124, 0);
        if (!send_bytes(fd, out)) return {false, {}, "client left"};
        return {true, *info, {}};
      }
      case kOptAbort:
        reply(fd, option, kRepAck);
        return {false, {}, "client aborted"};
      case kOptList: {
        if (length != 0) {
          if (!reply_error(fd, option, kRepErrInvalid, "LIST takes no data"))
            return {false, {}, "client left"};
          break;
        }
        for (const auto& name : catalog.names()) {
          std::vector<uint8_t> entry;
          put_u32(entry, static_cast<uint32_t>(name.size()));
          entry.insert(entry.end(), name.begin(), name.end());
          if (!reply(fd, option, kRepServer, entry)) return {false, {}, "client left"};
        }
        if (!reply(fd, option, kRepAck)) return {false, {}, "client left"};
        break;
      }
      case kOptInfo:
      case kOptGo: {
        // u32 name length | name | u16 count | count x u16 info request
        bool valid = length >= 6;
        uint32_t name_len = valid ? get_u32(data.data()) : 0;
        valid = valid && uint64_t{name_len} + 6 <= length;
        uint16_t requests = valid ? get_u16(data.data() + 4 + name_len) : 0;
        valid = valid && uint64_t{name_len} + 6 + 2ull * requests == length;
        if (!valid) {
          if (!reply_error(fd, option, kRepErrInvalid, "malformed INFO/GO request"))
            return {false, {}, "client left"};
          break;
        }
        std::string name(data.begin() + 4, data.begin() + 4 + name_len);
        bool wants_block_size = false;
        for (uint16_t i = 0; i < requests; ++i)
          if (get_u16(data.data() + 6 + name_len + 2 * i) == kInfoBlockSize)
            wants_block_size = true;
        auto info = catalog.find(name);
        if (std::string why = catalog.refusal(); !why.empty()) {
          if (!reply_error(fd, option, kRepErrUnknown, why)) return {false, {}, "client left"};
          break;
        }
        if (!info) {
          std::string msg = name.empty() ? "no default export: name a vdisk"
                                         : "no vdisk named '" + name + "'";
          if (!reply_error(fd, option, kRepErrUnknown, msg)) return {false, {}, "client left"};
          break;
        }
        if (!reply(fd, option, kRepInfo,
                   encode_info_export(info->size_bytes, transmission_flags())))
          return {false, {}, "client left"};
        if (wants_block_size &&
            !reply(fd, option, kRepInfo, encode_info_block_size(1, 4096, kMaxPayloadBytes)))
          return {false, {}, "client left"};
        if (!reply(fd, option, kRepAck)) return {false, {}, "client left"};
        if (option == kOptGo) return {true, *info, {}};
        break;
      }
      default:
        if (!reply_error(fd, option, kRepErrUnsup, "option not supported"))
          return {false, {}, "client left"};
        break;
    }
  }
}

}  // namespace sve::nbd

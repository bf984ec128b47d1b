#include "io/nbd/nbd_handshake.hpp"

#include <algorithm>

#include "hw/port/tcp.hpp"
#include "io/nbd/nbd_wire.hpp"
#include "io/tls/tls_server.hpp"

namespace sve::nbd {
namespace {

// The handshake ends without an export: the connection is closed.
HandshakeResult ended(std::string why) { return {false, {}, std::move(why), {}, nullptr}; }

// The socket, or once STARTTLS is done the TLS session over it.
struct Wire {
  int fd = -1;
  std::shared_ptr<TlsSession> tls;
  bool send(const void* data, size_t size) {
    return tls ? tls->send_all(data, size) : send_all(fd, data, size);
  }
  bool recv(void* out, size_t size) {
    return tls ? tls->recv_all(out, size) : recv_all(fd, out, size);
  }
};

bool send_bytes(Wire& w, const std::vector<uint8_t>& bytes) {
  return w.send(bytes.data(), bytes.size());
}

bool reply(Wire& wire, uint32_t option, uint32_t type, const std::vector<uint8_t>& data = {}) {
  return send_bytes(wire, encode_option_reply(option, type, data));
}

bool reply_error(Wire& wire, uint32_t option, uint32_t type, const std::string& message) {
  return reply(wire, option, type, std::vector<uint8_t>(message.begin(), message.end()));
}

// An INFO reply carrying a string (NBD_INFO_NAME, NBD_INFO_DESCRIPTION).
bool reply_string(Wire& wire, uint32_t option, uint16_t info, const std::string& text) {
  std::vector<uint8_t> data;
  put_u16(data, info);
  data.insert(data.end(), text.begin(), text.begin() + static_cast<long>(
                                                          std::min<size_t>(text.size(),
                                                                           kMaxStringBytes)));
  return reply(wire, option, kRepInfo, data);
}

// The contexts of `queries` SVE has, for LIST (`listing`: an empty list or
// a bare "base:" names every base context) or SET (exact names only).
std::vector<std::string> matching_contexts(const std::vector<std::string>& queries,
                                           bool listing) {
  if (listing && queries.empty()) return {kContextBaseAllocation};
  for (const auto& q : queries)
    if (q == kContextBaseAllocation || (listing && q == "base:")) return {kContextBaseAllocation};
  return {};
}

}  // namespace

uint16_t transmission_flags(bool structured, bool read_only) {
  uint16_t flags = kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendTrim | kTxSendWriteZeroes |
                   kTxCanMultiConn | kTxSendCache | kTxSendFastZero;
  if (structured) flags |= kTxSendDf;
  if (read_only) flags |= kTxReadOnly;
  return flags;
}

HandshakeResult run_handshake(int socket, ExportCatalog& catalog, const TlsServer* tls,
                              TlsMode mode) {
  if (!tls) mode = TlsMode::off;
  Wire wire{socket, nullptr};
  HandshakeResult result;
  std::vector<uint8_t> hello;
  put_u64(hello, kNbdMagic);
  put_u64(hello, kOptMagic);
  put_u16(hello, kFlagFixedNewstyle | kFlagNoZeroes);
  if (!send_bytes(wire, hello)) return ended("client left before the greeting");

  uint8_t client_flags_raw[4];
  if (!wire.recv(client_flags_raw, 4)) return ended("client left");
  uint32_t client_flags = get_u32(client_flags_raw);
  if (client_flags & ~(kClientFixedNewstyle | kClientNoZeroes))
    return ended("unknown client flags");
  const bool no_zeroes = client_flags & kClientNoZeroes;
  bool structured = false;
  // The contexts selected by the last SET_META_CONTEXT, for this export.
  std::string context_export;
  uint32_t allocation_context = 0;
  auto go = [&](const ExportInfo& info) {
    HandshakeResult r{true, info, {}, {structured, 0}, wire.tls};
    if (context_export == info.name) r.negotiated.allocation_context = allocation_context;
    return r;
  };

  for (;;) {
    uint8_t head[16];
    if (!wire.recv(head, sizeof head)) return ended("client left during options");
    if (get_u64(head) != kOptMagic) return ended("bad option magic");
    uint32_t option = get_u32(head + 8);
    uint32_t length = get_u32(head + 12);
    if (length > kMaxOptionBytes) return ended("option too large");
    std::vector<uint8_t> data(length);
    if (length && !wire.recv(data.data(), length))
      return ended("client left during options");

    // `require`: nothing but STARTTLS (or ABORT) before TLS.
    if (mode == TlsMode::require && !wire.tls && option != kOptStartTls && option != kOptAbort) {
      if (option == kOptExportName) return ended("a plain-text client, and TLS is required");
      if (!reply_error(wire, option, kRepErrTlsReqd,
                       "this node requires TLS: NBD_OPT_STARTTLS first"))
        return ended("client left");
      continue;
    }

    switch (option) {
      case kOptStartTls: {
        if (mode == TlsMode::off) {
          if (!reply_error(wire, option, kRepErrUnsup, "TLS is not enabled on this node"))
            return ended("client left");
          break;
        }
        const char* why = length != 0 ? "STARTTLS takes no data"
                          : wire.tls  ? "TLS is already on"
                                      : nullptr;
        if (why) {
          if (!reply_error(wire, option, kRepErrInvalid, why)) return ended("client left");
          break;
        }
        if (!reply(wire, option, kRepAck)) return ended("client left");
        auto session = tls->accept(socket);
        if (!session) return ended(session.error().message);
        wire.tls = std::move(session.value());
        catalog.identify(wire.tls->identity());
        // What was negotiated in plain text does not carry over (the spec).
        structured = false;
        context_export.clear();
        allocation_context = 0;
        break;
      }
      case kOptExportName: {
        std::string name(data.begin(), data.end());
        auto info = catalog.find(name);
        // This old option has no error reply: the spec says to disconnect.
        if (!catalog.refusal().empty()) return ended(catalog.refusal());
        if (!info) return ended("unknown export '" + name + "'");
        std::vector<uint8_t> out;
        put_u64(out, info->size_bytes);
        put_u16(out, transmission_flags(structured, info->read_only));
        if (!no_zeroes) out.resize(out.size() + 124, 0);
        if (!send_bytes(wire, out)) return ended("client left");
        return go(*info);
      }
      case kOptAbort:
        reply(wire, option, kRepAck);
        return ended("client aborted");
      case kOptList: {
        if (length != 0) {
          if (!reply_error(wire, option, kRepErrInvalid, "LIST takes no data"))
            return ended("client left");
          break;
        }
        for (const auto& name : catalog.names()) {
          std::vector<uint8_t> entry;
          put_u32(entry, static_cast<uint32_t>(name.size()));
          entry.insert(entry.end(), name.begin(), name.end());
          if (!reply(wire, option, kRepServer, entry)) return ended("client left");
        }
        if (!reply(wire, option, kRepAck)) return ended("client left");
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
          if (!reply_error(wire, option, kRepErrInvalid, "malformed INFO/GO request"))
            return ended("client left");
          break;
        }
        std::string name(data.begin() + 4, data.begin() + 4 + name_len);
        bool wants_block_size = false, wants_name = false, wants_description = false;
        for (uint16_t i = 0; i < requests; ++i) {
          uint16_t what = get_u16(data.data() + 6 + name_len + 2 * i);
          wants_block_size |= what == kInfoBlockSize;
          wants_name |= what == kInfoName;
          wants_description |= what == kInfoDescription;
        }
        auto info = catalog.find(name);
        if (std::string why = catalog.refusal(); !why.empty()) {
          if (!reply_error(wire, option, kRepErrUnknown, why)) return ended("client left");
          break;
        }
        if (!info) {
          std::string msg = name.empty() ? "no default export: name a vdisk"
                                         : "no vdisk named '" + name + "'";
          if (!reply_error(wire, option, kRepErrUnknown, msg)) return ended("client left");
          break;
        }
        if (!reply(wire, option, kRepInfo,
                   encode_info_export(info->size_bytes,
                                      transmission_flags(structured, info->read_only))))
          return ended("client left");
        if (wants_block_size &&
            !reply(wire, option, kRepInfo, encode_info_block_size(1, 4096, kMaxPayloadBytes)))
          return ended("client left");
        if (wants_name && !reply_string(wire, option, kInfoName, info->name))
          return ended("client left");
        if (wants_description && !info->description.empty() &&
            !reply_string(wire, option, kInfoDescription, info->description))
          return ended("client left");
        if (!reply(wire, option, kRepAck)) return ended("client left");
        if (option == kOptGo) return go(*info);
        break;
      }
      case kOptStructuredReply: {
        const char* why = length != 0   ? "STRUCTURED_REPLY takes no data"
                          : structured ? "structured replies are already on"
                                       : nullptr;
        if (why) {
          if (!reply_error(wire, option, kRepErrInvalid, why)) return ended("client left");
          break;
        }
        structured = true;
        if (!reply(wire, option, kRepAck)) return ended("client left");
        break;
      }
      case kOptListMetaContext:
      case kOptSetMetaContext: {
        const bool listing = option == kOptListMetaContext;
        MetaContextRequest request;
        std::string why;
        if (!structured)
          why = "negotiate structured replies first";
        else if (!decode_meta_context_request(data, request))
          why = "malformed META_CONTEXT request";
        // A SET that fails selects nothing.
        auto forget = [&] {
          if (listing) return;
          context_export.clear();
          allocation_context = 0;
        };
        if (!why.empty()) {
          forget();
          if (!reply_error(wire, option, kRepErrInvalid, why)) return ended("client left");
          break;
        }
        if (std::string refused = catalog.refusal(); !refused.empty() ||
                                                     !catalog.find(request.export_name)) {
          forget();
          if (!reply_error(wire, option, kRepErrUnknown,
                           refused.empty() ? "no vdisk named '" + request.export_name + "'"
                                           : refused))
            return ended("client left");
          break;
        }
        std::vector<std::string> found = matching_contexts(request.queries, listing);
        if (!listing) {
          context_export = request.export_name;
          allocation_context = found.empty() ? 0 : kAllocationContextId;
        }
        bool sent = true;
        for (const auto& context : found) {
          std::vector<uint8_t> entry;
          put_u32(entry, listing ? 0 : kAllocationContextId);  // LIST's ids are reserved
          entry.insert(entry.end(), context.begin(), context.end());
          sent = sent && reply(wire, option, kRepMetaContext, entry);
        }
        if (!sent || !reply(wire, option, kRepAck)) return ended("client left");
        break;
      }
      default:
        if (!reply_error(wire, option, kRepErrUnsup, "option not supported"))
          return ended("client left");
        break;
    }
  }
}

}  // namespace sve::nbd

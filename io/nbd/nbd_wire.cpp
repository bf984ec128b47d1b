#include "io/nbd/nbd_wire.hpp"

#include <algorithm>
#include <cerrno>

namespace sve::nbd {

void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
uint64_t get_u64(const uint8_t* p) {
  return uint64_t{get_u32(p)} << 32 | get_u32(p + 4);
}

namespace {
void store_u32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void store_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
}  // namespace

Request decode_request(const uint8_t* b) {
  Request r;
  r.magic = get_u32(b);
  r.flags = get_u16(b + 4);
  r.type = get_u16(b + 6);
  r.cookie = get_u64(b + 8);
  r.offset = get_u64(b + 16);
  r.length = get_u32(b + 24);
  return r;
}

void encode_request(const Request& r, uint8_t* out) {
  store_u32(out, r.magic);
  out[4] = static_cast<uint8_t>(r.flags >> 8);
  out[5] = static_cast<uint8_t>(r.flags);
  out[6] = static_cast<uint8_t>(r.type >> 8);
  out[7] = static_cast<uint8_t>(r.type);
  store_u64(out + 8, r.cookie);
  store_u64(out + 16, r.offset);
  store_u32(out + 24, r.length);
}

void encode_simple_reply(uint32_t error, uint64_t cookie, uint8_t* out) {
  store_u32(out, kSimpleReplyMagic);
  store_u32(out + 4, error);
  store_u64(out + 8, cookie);
}

void encode_chunk_header(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length,
                         uint8_t* out) {
  store_u32(out, kStructuredReplyMagic);
  out[4] = static_cast<uint8_t>(flags >> 8);
  out[5] = static_cast<uint8_t>(flags);
  out[6] = static_cast<uint8_t>(type >> 8);
  out[7] = static_cast<uint8_t>(type);
  store_u64(out + 8, cookie);
  store_u32(out + 16, length);
}

void encode_offset(uint64_t offset, uint8_t* out) { store_u64(out, offset); }

std::vector<uint8_t> encode_block_status(uint32_t context, const std::vector<Extent>& extents) {
  std::vector<uint8_t> out;
  out.reserve(4 + 8 * extents.size());
  put_u32(out, context);
  for (const Extent& e : extents) {
    put_u32(out, e.length);
    put_u32(out, e.flags);
  }
  return out;
}

std::vector<uint8_t> encode_error_chunk(uint32_t error, const std::string& message) {
  std::vector<uint8_t> out;
  size_t n = std::min<size_t>(message.size(), kMaxStringBytes);
  put_u32(out, error);
  put_u16(out, static_cast<uint16_t>(n));
  out.insert(out.end(), message.begin(), message.begin() + static_cast<long>(n));
  return out;
}

bool decode_meta_context_request(const std::vector<uint8_t>& data, MetaContextRequest& out) {
  size_t at = 0;
  auto string_at = [&](std::string& s) {
    if (data.size() - at < 4) return false;
    uint32_t n = get_u32(data.data() + at);
    at += 4;
    if (n > kMaxStringBytes || data.size() - at < n) return false;
    s.assign(data.begin() + static_cast<long>(at), data.begin() + static_cast<long>(at + n));
    at += n;
    return true;
  };
  out = MetaContextRequest{};
  if (!string_at(out.export_name)) return false;
  if (data.size() - at < 4) return false;
  uint32_t count = get_u32(data.data() + at);
  at += 4;
  // Each query takes at least its length: a count the data cannot hold is
  // refused before anything is reserved for it.
  if (count > (data.size() - at) / 4) return false;
  out.queries.resize(count);
  for (auto& q : out.queries)
    if (!string_at(q)) return false;
  return at == data.size();
}

std::vector<uint8_t> encode_option_reply(uint32_t option, uint32_t type,
                                         const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(20 + data.size());
  put_u64(out, kOptReplyMagic);
  put_u32(out, option);
  put_u32(out, type);
  put_u32(out, static_cast<uint32_t>(data.size()));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> encode_info_export(uint64_t size, uint16_t flags) {
  std::vector<uint8_t> out;
  put_u16(out, kInfoExport);
  put_u64(out, size);
  put_u16(out, flags);
  return out;
}

std::vector<uint8_t> encode_info_block_size(uint32_t min, uint32_t preferred,
                                            uint32_t max) {
  std::vector<uint8_t> out;
  put_u16(out, kInfoBlockSize);
  put_u32(out, min);
  put_u32(out, preferred);
  put_u32(out, max);
  return out;
}

uint32_t to_wire_error(int status, bool is_write) {
  switch (status) {
    case 0: return 0;
    case ERANGE: return is_write ? kENOSPC : kEINVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return kENOSPC;
    case EINVAL: return kEINVAL;
    case EPERM:
    case EROFS: return kEPERM;
    case ENOMEM: return kENOMEM;
    case EOVERFLOW: return kEOVERFLOW;
    case ESHUTDOWN: return kESHUTDOWN;
    default: return kEIO;
  }
}

}  // namespace sve::nbd

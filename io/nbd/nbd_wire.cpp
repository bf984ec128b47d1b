#include "io/nbd/nbd_wire.hpp"

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

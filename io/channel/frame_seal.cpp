#include "io/channel/frame_seal.hpp"

#include <sodium.h>

#include <cstring>

namespace sve::channel {
namespace {

static_assert(kTagBytes == crypto_onetimeauth_poly1305_BYTES);
static_assert(kTagBytes == crypto_aead_chacha20poly1305_ietf_ABYTES);
static_assert(kPeerMacBytes == crypto_stream_chacha20_KEYBYTES);
static_assert(kPeerMacBytes == crypto_aead_chacha20poly1305_ietf_KEYBYTES);

// A frame's Poly1305 tag under the one-time key ChaCha20 draws for frame
// number `n` (as ChaCha20-Poly1305 does for its messages).
void frame_tag(const PeerMac& key, uint64_t n, const iovec* parts, size_t count,
               uint8_t tag[kTagBytes]) {
  uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {};
  static_assert(sizeof nonce == sizeof n);
  std::memcpy(nonce, &n, sizeof n);
  uint8_t one_time[crypto_onetimeauth_poly1305_KEYBYTES];
  crypto_stream_chacha20(one_time, sizeof one_time, nonce, key.data());
  crypto_onetimeauth_poly1305_state state;
  crypto_onetimeauth_poly1305_init(&state, one_time);
  for (size_t i = 0; i < count; ++i)
    crypto_onetimeauth_poly1305_update(&state, static_cast<const uint8_t*>(parts[i].iov_base),
                                       parts[i].iov_len);
  crypto_onetimeauth_poly1305_final(&state, tag);
  sodium_memzero(one_time, sizeof one_time);
}

void record_nonce(uint64_t n, uint8_t out[crypto_aead_chacha20poly1305_ietf_NPUBBYTES]) {
  std::memset(out, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
  std::memcpy(out, &n, sizeof n);
}

}  // namespace

void FrameSealer::seal(const iovec* parts, size_t count, uint8_t tag[kTagBytes]) {
  frame_tag(key_, next_++, parts, count, tag);
}

bool FrameOpener::check(const char* frame, size_t bytes, const uint8_t tag[kTagBytes]) {
  iovec whole{const_cast<char*>(frame), bytes};
  uint8_t expected[kTagBytes];
  frame_tag(key_, next_++, &whole, 1, expected);
  return crypto_verify_16(expected, tag) == 0;
}

void LinkSealer::seal(const char* bytes, size_t length, std::string& out) {
  uint32_t sealed = static_cast<uint32_t>(length + kTagBytes);
  size_t at = out.size();
  out.resize(at + kRecordHeaderBytes + sealed);
  std::memcpy(out.data() + at, &sealed, kRecordHeaderBytes);
  uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  record_nonce(next_++, nonce);
  unsigned long long written = 0;
  // The length is covered too (as associated data).
  crypto_aead_chacha20poly1305_ietf_encrypt(
      reinterpret_cast<uint8_t*>(out.data() + at + kRecordHeaderBytes), &written,
      reinterpret_cast<const uint8_t*>(bytes), length,
      reinterpret_cast<const uint8_t*>(out.data() + at), kRecordHeaderBytes, nullptr, nonce,
      key_.data());
}

bool LinkOpener::feed(const char* bytes, size_t length, std::string& out) {
  if (!error_.empty()) return false;
  pending_.append(bytes, length);
  size_t at = 0;
  while (pending_.size() - at >= kRecordHeaderBytes) {
    uint32_t sealed;
    std::memcpy(&sealed, pending_.data() + at, kRecordHeaderBytes);
    if (sealed < kTagBytes || sealed > kMaxRecordPlain + kTagBytes) {
      error_ = "a record of " + std::to_string(sealed) + " bytes (at most " +
               std::to_string(kMaxRecordPlain + kTagBytes) + ")";
      return false;
    }
    if (pending_.size() - at - kRecordHeaderBytes < sealed) break;
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    record_nonce(next_++, nonce);
    size_t plain_at = out.size();
    out.resize(plain_at + sealed - kTagBytes);
    unsigned long long plain = 0;
    const auto* record = reinterpret_cast<const uint8_t*>(pending_.data() + at);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(
            reinterpret_cast<uint8_t*>(out.data() + plain_at), &plain, nullptr,
            record + kRecordHeaderBytes, sealed, record, kRecordHeaderBytes, nonce,
            key_.data()) != 0) {
      out.resize(plain_at);
      error_ = "a record failed its check (changed, replayed or out of order)";
      return false;
    }
    at += kRecordHeaderBytes + sealed;
  }
  pending_.erase(0, at);
  return true;
}

}  // namespace sve::channel

#include "io/channel/frame_seal.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace sve::channel {
namespace {

static_assert(kTagBytes == crypto_aead_chacha20poly1305_ietf_ABYTES);
static_assert(kPeerMacBytes == crypto_aead_chacha20poly1305_ietf_KEYBYTES);

void record_nonce(uint64_t n, uint8_t out[crypto_aead_chacha20poly1305_ietf_NPUBBYTES]) {
  std::memset(out, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
  std::memcpy(out, &n, sizeof n);
}

}  // namespace

FrameMac::FrameMac(const PeerMac& key) {
  gnutls_datum_t k{const_cast<uint8_t*>(key.data()), static_cast<unsigned>(key.size())};
  // (Fails only without memory or without AES-GCM in GnuTLS: nothing to
  // go on with.)
  if (gnutls_aead_cipher_init(&cipher_, GNUTLS_CIPHER_AES_256_GCM, &k) < 0) std::abort();
}

FrameMac::~FrameMac() { gnutls_aead_cipher_deinit(cipher_); }

void FrameMac::tag(uint64_t frame, const iovec* parts, size_t count, uint8_t out[kTagBytes]) {
  uint8_t nonce[12] = {};
  std::memcpy(nonce, &frame, sizeof frame);
  static_assert(sizeof(giovec_t) == sizeof(iovec));
  size_t tag_bytes = kTagBytes;
  // Nothing encrypted: the whole frame is associated data (a GMAC).
  if (gnutls_aead_cipher_encryptv2(cipher_, nonce, sizeof nonce,
                                   reinterpret_cast<const giovec_t*>(parts),
                                   static_cast<int>(count), nullptr, 0, out, &tag_bytes) < 0)
    std::memset(out, 0, kTagBytes);  // (cannot fail for these sizes; a zero tag fails at the peer)
}

void FrameSealer::seal(const iovec* parts, size_t count, uint8_t tag[kTagBytes]) {
  mac_.tag(next_++, parts, count, tag);
}

bool FrameOpener::check(const char* frame, size_t bytes, const uint8_t tag[kTagBytes]) {
  iovec whole{const_cast<char*>(frame), bytes};
  uint8_t expected[kTagBytes];
  mac_.tag(next_++, &whole, 1, expected);
  return sodium_memcmp(expected, tag, kTagBytes) == 0;
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

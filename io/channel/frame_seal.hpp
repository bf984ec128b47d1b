#pragma once
// What keeps a connection between two nodes honest after its handshake
// (channel_auth.hpp). The handshake proves each end holds the cluster key
// once; an attacker on the path could still change, drop, replay or inject
// bytes afterwards. So each connection derives two keys of its own from
// the handshake (one per direction), and:
//
//   data channel (FrameSealer / FrameOpener): every frame carries a
//     16-byte tag after its body, a GMAC over header and body under the
//     direction key with the frame's number as nonce. The frames are
//     numbered in the order they leave, so a changed, dropped, replayed or
//     reordered frame fails its tag and ends the connection. Host data is
//     not encrypted here (it is sent from the buffers it lies in); the
//     check costs one pass over the bytes.
//   cluster link (LinkSealer / LinkOpener): the relayed byte stream is cut
//     into records, each encrypted and authenticated (ChaCha20-Poly1305,
//     IETF) under the direction key with the record number as nonce. The
//     events carry cluster state, CHAP secrets and password hashes among it,
//     so they are kept secret too.
//
// GnuTLS (the frames) and libsodium (the records) underneath; no CAF.
// Each object belongs to one thread.
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/auth/cluster_key.hpp"

struct api_aead_cipher_hd_st;  // GnuTLS's, for FrameMac

namespace sve::channel {

inline constexpr size_t kTagBytes = 16;

// The two keys of one connection, as one end sees them.
struct SessionKeys {
  PeerMac send{};
  PeerMac receive{};
};

// A frame's tag: the GMAC (AES-256-GCM over the frame as associated data,
// nothing encrypted) under the direction's key, the frame's number as the
// nonce; computed over the pieces the frame is sent from. GnuTLS's AES-GCM
// (AES-NI, carry-less multiplication) does a 4 KiB frame in about half a
// microsecond on this VM, under half of what Poly1305 took.
class FrameMac {
 public:
  explicit FrameMac(const PeerMac& key);
  ~FrameMac();
  FrameMac(const FrameMac&) = delete;
  FrameMac& operator=(const FrameMac&) = delete;
  void tag(uint64_t frame, const iovec* parts, size_t count, uint8_t out[kTagBytes]);

 private:
  api_aead_cipher_hd_st* cipher_ = nullptr;
};

class FrameSealer {
 public:
  explicit FrameSealer(const PeerMac& key) : mac_(key) {}
  // The next frame's tag over `parts` (header and body, in order).
  void seal(const iovec* parts, size_t count, uint8_t tag[kTagBytes]);
  uint64_t frames() const { return next_; }

 private:
  FrameMac mac_;
  uint64_t next_ = 0;
};

class FrameOpener {
 public:
  explicit FrameOpener(const PeerMac& key) : mac_(key) {}
  // Whether `tag` is the next frame's tag over `frame` (header and body,
  // contiguous); the frame number moves on either way (a connection ends
  // at the first that fails).
  bool check(const char* frame, size_t bytes, const uint8_t tag[kTagBytes]);

 private:
  FrameMac mac_;
  uint64_t next_ = 0;
};

// The cluster link's records: a 4-byte length (of what follows), then the
// ciphertext of at most kMaxRecordPlain bytes and its 16-byte tag.
inline constexpr size_t kMaxRecordPlain = 64 * 1024;
inline constexpr size_t kRecordHeaderBytes = 4;

class LinkSealer {
 public:
  explicit LinkSealer(const PeerMac& key) : key_(key) {}
  // `bytes` (at most kMaxRecordPlain) as one record, appended to `out`.
  void seal(const char* bytes, size_t length, std::string& out);

 private:
  PeerMac key_;
  uint64_t next_ = 0;
};

class LinkOpener {
 public:
  explicit LinkOpener(const PeerMac& key) : key_(key) {}
  // Takes what arrived; the plain bytes of every whole record go to `out`.
  // False (and why) once a record is malformed or fails its tag: the link
  // must end.
  bool feed(const char* bytes, size_t length, std::string& out);
  const std::string& error() const { return error_; }

 private:
  PeerMac key_;
  uint64_t next_ = 0;
  std::string pending_;  // a record not yet whole
  std::string error_;
};

}  // namespace sve::channel

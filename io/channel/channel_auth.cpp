#include "io/channel/channel_auth.hpp"

#include <cstring>
#include <string_view>

#include "hw/port/tcp.hpp"

namespace sve::channel {
namespace {

template <class T>
std::string_view bytes_of(const T& v) {
  return {reinterpret_cast<const char*>(&v), sizeof v};
}

std::string_view purpose_name(Purpose purpose) {
  return purpose == Purpose::data_channel ? "data channel" : "cluster link";
}

PeerMac proof(std::string_view who, const ClusterKeyBytes& key, Purpose purpose,
              const FrameHeader& hello, const Nonce& caller, const Nonce& listener) {
  return peer_mac(key, {"sve node handshake v1", purpose_name(purpose), who, bytes_of(hello),
                        bytes_of(caller.bytes), bytes_of(listener.bytes)});
}

// The key for what `from` sends: under another first part than the proofs,
// so it is independent of them (they cross the wire; it never does).
PeerMac direction_key(std::string_view from, const ClusterKeyBytes& key, Purpose purpose,
                      const FrameHeader& hello, const Nonce& caller, const Nonce& listener) {
  return peer_mac(key, {"sve session key v1", purpose_name(purpose), from, bytes_of(hello),
                        bytes_of(caller.bytes), bytes_of(listener.bytes)});
}

// A frame of `type` (header and its fixed body) from a blocking socket.
std::string receive(int fd, FrameType type, FrameHeader& h, void* body, size_t body_bytes) {
  if (!recv_all(fd, &h, sizeof h))
    return std::string("no ") + to_string(type) + " came (the other end left, or waited too long)";
  if (std::string bad = check_header(h); !bad.empty()) return bad;
  if (h.type != static_cast<uint8_t>(type))
    return std::string("a ") + to_string(static_cast<FrameType>(h.type)) + " where a " +
           to_string(type) + " belonged";
  if (!recv_all(fd, body, body_bytes)) return std::string("a ") + to_string(type) + " cut short";
  return {};
}

bool send_frame(int fd, FrameType type, const void* body, size_t body_bytes,
                const FrameHeader* header = nullptr) {
  FrameHeader h;
  if (header) h = *header;
  h.type = static_cast<uint8_t>(type);
  h.body_bytes = static_cast<uint32_t>(body_bytes);
  char out[sizeof h + kNonceBytes + kProofBytes];
  std::memcpy(out, &h, sizeof h);
  std::memcpy(out + sizeof h, body, body_bytes);
  return send_all(fd, out, sizeof h + body_bytes);
}

}  // namespace

Nonce fresh_nonce() {
  Nonce n;
  random_bytes(n.bytes, sizeof n.bytes);
  return n;
}

FrameHeader make_hello(uint32_t origin, uint32_t core, uint32_t cores, uint64_t instance) {
  FrameHeader h;
  h.type = static_cast<uint8_t>(FrameType::hello);
  h.body_bytes = kNonceBytes;
  h.origin = origin;
  h.core = core;
  h.count = cores;
  h.id = instance;
  return h;
}

PeerMac listener_proof(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                       const Nonce& caller, const Nonce& listener) {
  return proof("listener", key, purpose, hello, caller, listener);
}

PeerMac caller_proof(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                     const Nonce& caller, const Nonce& listener) {
  return proof("caller", key, purpose, hello, caller, listener);
}

SessionKeys session_keys(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                         const Nonce& caller, const Nonce& listener, bool for_caller) {
  PeerMac from_caller = direction_key("caller", key, purpose, hello, caller, listener);
  PeerMac from_listener = direction_key("listener", key, purpose, hello, caller, listener);
  return for_caller ? SessionKeys{from_caller, from_listener}
                    : SessionKeys{from_listener, from_caller};
}

std::string listen_handshake(int fd, const ClusterKeyBytes& key, Purpose purpose,
                             FrameHeader& hello, SessionKeys& keys) {
  Nonce caller;
  if (std::string bad = receive(fd, FrameType::hello, hello, caller.bytes, kNonceBytes);
      !bad.empty())
    return bad;
  Nonce mine = fresh_nonce();
  uint8_t challenge[kNonceBytes + kProofBytes];
  std::memcpy(challenge, mine.bytes, kNonceBytes);
  PeerMac proof = listener_proof(key, purpose, hello, caller, mine);
  std::memcpy(challenge + kNonceBytes, proof.data(), kProofBytes);
  if (!send_frame(fd, FrameType::challenge, challenge, sizeof challenge))
    return "the caller left during the handshake";
  FrameHeader answer;
  uint8_t theirs[kProofBytes];
  if (std::string bad = receive(fd, FrameType::proof, answer, theirs, sizeof theirs); !bad.empty())
    return bad;
  if (!peer_mac_matches(caller_proof(key, purpose, hello, caller, mine), theirs))
    return "node " + std::to_string(hello.origin) + " (as it says) does not hold this cluster's key";
  keys = session_keys(key, purpose, hello, caller, mine, false);
  return {};
}

std::string call_handshake(int fd, const ClusterKeyBytes& key, Purpose purpose,
                           const FrameHeader& hello, SessionKeys& keys) {
  Nonce mine = fresh_nonce();
  if (!send_frame(fd, FrameType::hello, mine.bytes, kNonceBytes, &hello))
    return "the listener closed the connection";
  FrameHeader h;
  uint8_t challenge[kNonceBytes + kProofBytes];
  if (std::string bad = receive(fd, FrameType::challenge, h, challenge, sizeof challenge);
      !bad.empty())
    return bad;
  Nonce theirs;
  std::memcpy(theirs.bytes, challenge, kNonceBytes);
  if (!peer_mac_matches(listener_proof(key, purpose, hello, mine, theirs), challenge + kNonceBytes))
    return "the node listening there does not hold this cluster's key";
  PeerMac proof = caller_proof(key, purpose, hello, mine, theirs);
  if (!send_frame(fd, FrameType::proof, proof.data(), kProofBytes))
    return "the listener closed the connection";
  keys = session_keys(key, purpose, hello, mine, theirs, true);
  return {};
}

}  // namespace sve::channel

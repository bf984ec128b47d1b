#pragma once
// The handshake that opens every connection between two nodes
// (channel_wire.hpp's frames): both ends prove they hold the cluster key
// (io/auth/cluster_key.hpp) over nonces each end picked afresh, so a
// recorded handshake opens nothing.
//
//   caller   -> hello:     who is calling, nonce C
//   listener -> challenge: nonce L, MAC(key, purpose, "listener", hello, C, L)
//   caller   -> proof:     MAC(key, purpose, "caller", hello, C, L)
//
// The caller checks the listener's proof before it sends anything else (a
// listener without the key gets nothing); the listener checks the caller's
// before the connection goes anywhere (a caller without the key neither
// writes a copy into this node's memory, nor runs a request, nor speaks to
// its cluster actor). The purpose (a data channel, a cluster link) is
// covered too, so one kind of connection's proof opens no other kind.
//
// Each end also derives two keys for the rest of the connection (one per
// direction, from the key, the hello and both nonces, so every connection
// has its own): what follows the handshake is sealed with them
// (frame_seal.hpp), so an attacker on the path can neither change nor
// inject anything after it.
#include <cstdint>
#include <string>

#include "io/auth/cluster_key.hpp"
#include "io/channel/channel_wire.hpp"
#include "io/channel/frame_seal.hpp"

namespace sve::channel {

enum class Purpose : uint8_t { data_channel, cluster_link };

struct Nonce {
  uint8_t bytes[kNonceBytes];
};
Nonce fresh_nonce();

FrameHeader make_hello(uint32_t origin, uint32_t core, uint32_t cores, uint64_t instance);

PeerMac listener_proof(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                       const Nonce& caller, const Nonce& listener);
PeerMac caller_proof(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                     const Nonce& caller, const Nonce& listener);

// The connection's keys, for the caller's end or the listener's.
SessionKeys session_keys(const ClusterKeyBytes& key, Purpose purpose, const FrameHeader& hello,
                         const Nonce& caller, const Nonce& listener, bool for_caller);

// Each half on a blocking socket whose receive deadline the caller set:
// empty once the other end proved the key, else why not; then `keys` are
// this end's. The listener's half fills in the caller's hello.
std::string listen_handshake(int fd, const ClusterKeyBytes& key, Purpose purpose,
                             FrameHeader& hello, SessionKeys& keys);
std::string call_handshake(int fd, const ClusterKeyBytes& key, Purpose purpose,
                           const FrameHeader& hello, SessionKeys& keys);

}  // namespace sve::channel

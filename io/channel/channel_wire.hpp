#pragma once
// The frames of the node-to-node data channel (io/channel/data_channel.hpp):
// the mirrored cache's copies, their answers and their releases; host
// requests forwarded to the vdisk's owner and their answers. A frame is
// a 48-byte header and a body whose length is a multiple of 8, so that the
// block numbers in a body lie aligned in the receive buffer and are read in
// place. Byte order is the host's: the channel joins the two nodes of an
// I/O group, which run the same build (checked in the hello).
//
// Everything read from a socket is checked by check_header() before any of
// it is used: a frame that fails ends the connection, never the process.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sve::channel {

static_assert(std::endian::native == std::endian::little, "the channel's frames are little-endian");

inline constexpr uint32_t kMagic = 0x43455653;  // "SVEC"
inline constexpr uint8_t kVersion = 4;  // 2: the hello proves the cluster key; 3: frames sealed;
                                        // 4: copies by reference (mirror_ref)
inline constexpr uint32_t kBlockBytes = 4096;   // the cache's block
inline constexpr uint32_t kMaxBlocks = 1024;    // per mirror frame: 4 MiB of data
inline constexpr uint32_t kMaxBodyBytes = kMaxBlocks * (kBlockBytes + 16);
inline constexpr uint64_t kMaxForwardBytes = 32ull << 20;  // the largest host request
// A forwarded block status: its range may be as long as NBD's (a u32), its
// answer is one page (io/protocol.hpp's StatusExtent list), and the body's
// `flags` carry the most extents the asker takes.
inline constexpr uint64_t kMaxStatusRange = UINT32_MAX;
inline constexpr uint32_t kStatusAnswerBytes = 4096;
inline constexpr uint32_t kMaxStatusExtents = (kStatusAnswerBytes - 4) / 8;
// The longest range a forwarded request of this op (io/protocol.hpp's
// IoOp) may name: its data out at most kMaxForwardBytes (a
// compare-and-write's is twice its range), a block status' kMaxStatusRange.
uint64_t max_forward_length(uint32_t op);

// A connection opens with a handshake in which each end proves it holds
// the cluster key (io/channel/channel_auth.hpp): hello (the caller's
// nonce), challenge (the listener's nonce and its proof), proof (the
// caller's). Only then does either end send anything else.
inline constexpr uint32_t kNonceBytes = 16;
inline constexpr uint32_t kProofBytes = 32;

enum class FrameType : uint8_t {
  hello = 1,       // first frame of a connection: who is calling, and its nonce
  mirror = 2,      // copies of dirty blocks: blocks[count], seqs[count], data
  mirror_ack = 3,  // the answer to one mirror frame: its id and status
  release = 4,     // the copies the receiver may free: blocks[count], seqs[count]
  forward = 5,     // a host request for the receiver to run: ForwardBody, then a
                   // write's data (padded to 8)
  forward_answer = 6,  // its status, and a read's data: count bytes (padded to 8)
  challenge = 7,   // the listener's answer to a hello: its nonce, then its proof
  proof = 8,       // the caller's proof, the last frame of the handshake
  mirror_ref = 9,  // copies of blocks whose data the receiver forwarded to the sender:
                   // forward id, blocks[count] (consecutive), seqs[count]; no data.
                   // Answered by a mirror_ack.
};

// What a forward frame's body starts with.
struct ForwardBody {
  uint64_t offset = 0;  // bytes into the vdisk
  uint64_t length = 0;  // bytes
  uint32_t op = 0;      // an IoOp
  uint32_t flags = 0;   // io_flags; block status: the most extents wanted
};
static_assert(sizeof(ForwardBody) == 24);

inline constexpr uint64_t pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

struct FrameHeader {
  uint32_t magic = kMagic;
  uint8_t type = 0;
  uint8_t version = kVersion;
  uint16_t reserved = 0;
  uint32_t body_bytes = 0;  // after the header; a multiple of 8
  uint32_t origin = 0;      // the node that sent the frame
  uint32_t vdisk = 0;
  uint32_t count = 0;       // blocks of a mirror or release; hello: the caller's cores;
                            // forward_answer: bytes of data
  uint64_t id = 0;          // mirror, mirror_ack: the copy's id; forward, forward_answer:
                            // the request's; hello: the caller's instance
  uint64_t epoch = 0;       // mirror: the cache epoch of the copies; forward: the
                            // generation of the sender's route table;
                            // forward_answer: a compare-and-write's miscompare
                            // offset (IoRequest::miscompare_at)
  int32_t status = 0;       // mirror_ack, forward_answer: 0 or an errno
  uint32_t core = 0;        // hello: the caller's core
};
static_assert(sizeof(FrameHeader) == 48);
inline constexpr size_t kHeaderBytes = sizeof(FrameHeader);

// The body length a frame of `type` with `count` blocks must have.
inline uint64_t body_bytes_for(FrameType type, uint64_t count) {
  switch (type) {
    case FrameType::mirror: return count * (16 + kBlockBytes);
    case FrameType::release: return count * 16;
    case FrameType::mirror_ref: return 8 + count * 16;
    case FrameType::forward_answer: return pad8(count);
    case FrameType::hello: return kNonceBytes;
    case FrameType::challenge: return kNonceBytes + kProofBytes;
    case FrameType::proof: return kProofBytes;
    case FrameType::forward:  // checked against its ForwardBody when it arrives
    case FrameType::mirror_ack: return 0;
  }
  return 0;
}

// Empty if `h` may be used; else why the connection must end.
std::string check_header(const FrameHeader& h);
// The same for a forward frame's body, once it has arrived.
std::string forward_body_error(const FrameHeader& h, const ForwardBody& body);

const char* to_string(FrameType type);

}  // namespace sve::channel

#include "io/channel/channel_wire.hpp"

#include "io/protocol.hpp"

namespace sve::channel {

std::string check_header(const FrameHeader& h) {
  if (h.magic != kMagic) return "bad frame magic";
  if (h.version != kVersion) return "frame version " + std::to_string(h.version) + ", expected " +
                                    std::to_string(kVersion);
  auto type = static_cast<FrameType>(h.type);
  switch (type) {
    case FrameType::mirror_ack:
      if (h.body_bytes != 0) return std::string(to_string(type)) + " frame with a body";
      return {};
    case FrameType::hello:
    case FrameType::challenge:
    case FrameType::proof:
      break;  // a fixed body
    case FrameType::mirror:
      if (h.count == 0 || h.count > kMaxBlocks)
        return "mirror frame with " + std::to_string(h.count) + " blocks";
      break;
    case FrameType::release:
      if (h.count > kMaxBlocks) return "release frame with " + std::to_string(h.count) + " blocks";
      break;
    case FrameType::mirror_ref:
      if (h.count == 0 || h.count > kMaxBlocks)
        return "mirror_ref frame with " + std::to_string(h.count) + " blocks";
      break;
    case FrameType::forward:
      // The body's own fields are checked with the body (forward_body_error).
      if (h.body_bytes < sizeof(ForwardBody) || h.body_bytes > sizeof(ForwardBody) + kMaxForwardBytes ||
          h.body_bytes % 8 || h.count != 0)
        return "forward frame body of " + std::to_string(h.body_bytes) + " bytes";
      return {};
    case FrameType::forward_answer:
      if (h.count > kMaxForwardBytes)
        return "forward_answer frame with " + std::to_string(h.count) + " bytes of data";
      break;
    default:
      return "unknown frame type " + std::to_string(h.type);
  }
  if (h.body_bytes != body_bytes_for(type, h.count))
    return std::string(to_string(type)) + " frame body of " + std::to_string(h.body_bytes) +
           " bytes for " + std::to_string(h.count) + " blocks";
  return {};
}

uint64_t max_forward_length(uint32_t op) {
  const auto io_op = static_cast<IoOp>(op);
  if (io_op == IoOp::block_status) return kMaxStatusRange;
  return data_out_bytes(io_op, 1) > 1 ? kMaxForwardBytes / 2 : kMaxForwardBytes;
}

std::string forward_body_error(const FrameHeader& h, const ForwardBody& b) {
  // The ops a host request may carry (io/protocol.hpp's IoOp).
  if (b.op > static_cast<uint32_t>(IoOp::or_write))
    return "forward frame with op " + std::to_string(b.op);
  const auto op = static_cast<IoOp>(b.op);
  bool status = op == IoOp::block_status;
  if (b.length > max_forward_length(b.op))
    return "forward frame for " + std::to_string(b.length) + " bytes";
  if (status && (b.flags == 0 || b.flags > kMaxStatusExtents))
    return "forward frame asking for " + std::to_string(b.flags) + " extents";
  if (b.offset + b.length < b.offset) return "forward frame range wraps";
  // (A compare-and-write carries what the range must hold, then its data.)
  uint64_t data = pad8(data_out_bytes(op, b.length));
  if (h.body_bytes != sizeof(ForwardBody) + data)
    return "forward frame body of " + std::to_string(h.body_bytes) + " bytes for a request of " +
           std::to_string(b.length);
  return {};
}

const char* to_string(FrameType type) {
  switch (type) {
    case FrameType::hello: return "hello";
    case FrameType::challenge: return "challenge";
    case FrameType::proof: return "proof";
    case FrameType::mirror: return "mirror";
    case FrameType::mirror_ack: return "mirror_ack";
    case FrameType::release: return "release";
    case FrameType::mirror_ref: return "mirror_ref";
    case FrameType::forward: return "forward";
    case FrameType::forward_answer: return "forward_answer";
  }
  return "unknown";
}

}  // namespace sve::channel

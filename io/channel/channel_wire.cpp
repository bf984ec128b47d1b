#include "io/channel/channel_wire.hpp"

namespace sve::channel {

std::string check_header(const FrameHeader& h) {
  if (h.magic != kMagic) return "bad frame magic";
  if (h.version != kVersion) return "frame version " + std::to_string(h.version) + ", expected " +
                                    std::to_string(kVersion);
  auto type = static_cast<FrameType>(h.type);
  switch (type) {
    case FrameType::hello:
    case FrameType::mirror_ack:
      if (h.body_bytes != 0) return std::string(to_string(type)) + " frame with a body";
      return {};
    case FrameType::mirror:
      if (h.count == 0 || h.count > kMaxBlocks)
        return "mirror frame with " + std::to_string(h.count) + " blocks";
      break;
    case FrameType::release:
      if (h.count > kMaxBlocks) return "release frame with " + std::to_string(h.count) + " blocks";
      break;
    default:
      return "unknown frame type " + std::to_string(h.type);
  }
  if (h.body_bytes != body_bytes_for(type, h.count))
    return std::string(to_string(type)) + " frame body of " + std::to_string(h.body_bytes) +
           " bytes for " + std::to_string(h.count) + " blocks";
  return {};
}

const char* to_string(FrameType type) {
  switch (type) {
    case FrameType::hello: return "hello";
    case FrameType::mirror: return "mirror";
    case FrameType::mirror_ack: return "mirror_ack";
    case FrameType::release: return "release";
  }
  return "unknown";
}

}  // namespace sve::channel

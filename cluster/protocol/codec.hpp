#pragma once
// The wire form of protocol messages between nodes: msgpack, as the array
// [message kind, fields...]. A frame that does not decode into a known
// message is dropped by the receiver, never trusted.
#include <optional>
#include <string>

#include "cluster/protocol/types.hpp"

namespace sve::cluster {

std::string encode_message(const Message& message);
std::optional<Message> decode_message(const std::string& bytes);

}  // namespace sve::cluster

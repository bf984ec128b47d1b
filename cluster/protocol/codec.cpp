#include "cluster/protocol/codec.hpp"

#include <sstream>

#include "util/bounded_unpack.hpp"

namespace sve::cluster {
namespace {

// Decodes alternative `I` of Message if `kind` names it.
template <size_t I>
bool decode_as(size_t kind, const msgpack::object& body, Message& out) {
  if (kind != I) return false;
  std::variant_alternative_t<I, Message> value;
  body.convert(value);
  out = std::move(value);
  return true;
}

template <size_t... I>
bool decode_any(size_t kind, const msgpack::object& body, Message& out,
                std::index_sequence<I...>) {
  return (decode_as<I>(kind, body, out) || ...);
}

}  // namespace

std::string encode_message(const Message& message) {
  std::stringstream out;
  msgpack::packer<std::stringstream> pk(out);
  pk.pack_array(2);
  pk.pack(static_cast<uint32_t>(message.index()));
  std::visit([&](const auto& m) { pk.pack(m); }, message);
  return out.str();
}

std::optional<Message> decode_message(const std::string& bytes) {
  try {
    // A frame's own header may claim billions of elements: bounded by its size.
    msgpack::object_handle handle = bounded_unpack(bytes.data(), bytes.size(), 16);
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size != 2) return std::nullopt;
    size_t kind = root.via.array.ptr[0].as<uint32_t>();
    Message out;
    if (!decode_any(kind, root.via.array.ptr[1], out,
                    std::make_index_sequence<std::variant_size_v<Message>>{}))
      return std::nullopt;
    return out;
  } catch (const std::exception&) {  // malformed: msgpack throws on bad input
    return std::nullopt;
  }
}

}  // namespace sve::cluster

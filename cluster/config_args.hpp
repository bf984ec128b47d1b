#pragma once
// Reading the arguments of admin commands: each missing or malformed one is
// a clear one-line error.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <string>

#include <nlohmann/json.hpp>

#include "model/edits.hpp"
#include "util/result.hpp"
#include "util/size.hpp"

namespace sve::config_args {

using nlohmann::json;

inline Error bad(std::string message) { return make_error(std::move(message), EINVAL); }

inline Result<std::string> get_string(const json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty())
    return bad(std::string("missing argument '") + key + "'");
  return it->get<std::string>();
}

inline Result<std::string> get_name(const json& args, const char* key) {
  auto name = get_string(args, key);
  if (!name) return name;
  const std::string& n = name.value();
  bool valid = n.size() <= 63 && std::all_of(n.begin(), n.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                        c == '-' || c == '.';
               });
  if (!valid)
    return bad("invalid name '" + n + "': use up to 63 letters, digits, '_', '-', '.'");
  return name;
}

// Sizes arrive as a byte count or a string with a K/M/G/T suffix.
inline Result<uint64_t> get_size(const json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end()) return bad(std::string("missing argument '") + key + "'");
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_string()) {
    if (auto v = parse_size(it->get<std::string>())) return *v;
    return bad("invalid size '" + it->get<std::string>() +
               "': expected a number with an optional K, M, G or T suffix");
  }
  return bad(std::string("invalid size for '") + key + "'");
}

// Where a new or moved vdisk goes: "iogrp" (a name) and "node" (an id).
inline Result<Placement> get_placement(const json& args) {
  Placement p;
  if (args.contains("iogrp")) {
    auto name = get_name(args, "iogrp");
    if (!name) return name.error();
    p.iogrp = name.value();
  }
  if (args.contains("node")) {
    if (!args["node"].is_number_unsigned() || args["node"].get<uint64_t>() > UINT32_MAX)
      return bad("--node takes a node id");
    p.node = args["node"].get<uint32_t>();
  }
  return p;
}

}  // namespace sve::config_args

#include "admin/admin_schema.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <vector>

#include "util/size.hpp"

namespace sve {

using nlohmann::json;

namespace {

enum class Type {
  name,      // an object name: 1-63 letters, digits, '_', '-', '.'
  text,      // a non-empty string of at most `max` bytes
  size,      // a byte count, or a string with a K/M/G/T suffix
  count,     // an unsigned integer in [min, max]
  rate,      // a number in (0, max]
  names,     // a non-empty array of names
  texts,     // an array of at most `max` strings of 1 to 255 bytes
  node_pair, // two node ids
  flag       // true or false
};

struct Field {
  const char* key;
  Type type;
  bool required = false;
  uint64_t min = 0;
  uint64_t max = 0;  // text: length; count: value; rate: value
};

constexpr uint64_t kMaxNodeId = 999'999;  // as svectl reads them (six digits)
constexpr uint64_t kMaxPath = 4096;

Field name(const char* key = "name") { return {key, Type::name, true}; }
Field opt_name(const char* key) { return {key, Type::name, false}; }
Field size(const char* key, bool required) { return {key, Type::size, required}; }
Field percent(const char* key) { return {key, Type::count, false, 0, 100}; }
Field node_id(const char* key, bool required) {
  return {key, Type::count, required, 1, kMaxNodeId};
}

// The commands a client may send. Internal steps (the cache controller's
// group transitions and handovers) are not among them: they are committed
// inside the node and cannot be asked for from outside.
const std::map<std::string, std::vector<Field>, std::less<>>& commands() {
  static const std::map<std::string, std::vector<Field>, std::less<>> table = {
      {"mdisk.add", {name(), {"path", Type::text, true, 1, kMaxPath}}},
      {"mdisk.list", {}},
      {"mdisk.remove", {name()}},
      {"pool.create", {name(), {"mdisks", Type::names, true}, size("extent_size", false)}},
      {"pool.list", {}},
      {"pool.delete", {name()}},
      {"pool.addmdisk", {name(), {"mdisks", Type::names, true}}},
      {"vdisk.create",
       {name(), name("pool"), size("size", true), {"policy", Type::text, false, 1, 32},
        opt_name("iogrp"), node_id("node", false), {"thin", Type::flag}, size("grain", false),
        size("rsize", false), percent("rsize_pct"), percent("warning"),
        {"autoexpand", Type::flag}}},
      {"vdisk.list", {}},
      {"vdisk.show", {name()}},
      {"vdisk.expand", {name(), size("size", true)}},
      {"vdisk.delete", {name()}},
      {"vdisk.set",
       {name(), {"read_only", Type::flag}, percent("warning"), {"autoexpand", Type::flag}}},
      {"vdisk.check", {name()}},
      {"pool.check", {name()}},
      {"vdisk.move", {name(), opt_name("iogrp"), node_id("node", false)}},
      {"vdisk.clear-reservations", {name()}},
      {"iogrp.create", {name(), {"nodes", Type::node_pair, true}}},
      {"iogrp.list", {}},
      {"fcmap.create",
       {opt_name("name"), name("source"), name("target"),
        {"copy_rate", Type::count, false, 0, 150}, {"clean_rate", Type::count, false, 0, 150},
        size("grain", false),
        {"autodelete", Type::flag}, {"incremental", Type::flag}, opt_name("consistgrp")}},
      {"fcmap.list", {}},
      {"fcmap.show", {name()}},
      {"fcmap.prepare", {name()}},
      {"fcmap.start", {name()}},
      {"fcmap.stop", {name(), {"force", Type::flag}}},
      {"fcmap.delete", {name(), {"force", Type::flag}}},
      {"fcmap.set",
       {name(), {"copy_rate", Type::count, false, 0, 150},
        {"clean_rate", Type::count, false, 0, 150}, {"autodelete", Type::flag},
        opt_name("consistgrp"), {"no_consistgrp", Type::flag}}},
      {"fcconsistgrp.create", {opt_name("name")}},
      {"fcconsistgrp.list", {}},
      {"fcconsistgrp.show", {name()}},
      {"fcconsistgrp.prepare", {name()}},
      {"fcconsistgrp.start", {name()}},
      {"fcconsistgrp.stop", {name(), {"force", Type::flag}}},
      {"fcconsistgrp.delete", {name(), {"force", Type::flag}}},
      {"iogrp.delete", {name()}},
      {"host.create",
       {name(), {"nbd_identity", Type::text, false, 1, 255}, {"addresses", Type::texts, false, 0, 16},
        {"iqn", Type::text, false, 1, 223}}},
      {"host.list", {}},
      {"host.show", {name()}},
      {"host.set",
       {name(), {"nbd_identity", Type::text, false, 0, 255}, {"addresses", Type::texts, false, 0, 16},
        {"iqn", Type::text, false, 0, 223}}},
      {"host.chap", {name(), {"secret", Type::text, true, 0, 255}}},
      {"host.delete", {name(), {"force", Type::flag}}},
      {"vdisk.map",
       {name(), name("host"), {"lun", Type::count, false, 0, 16383}, {"read_only", Type::flag},
        {"force", Type::flag}}},
      {"vdisk.unmap", {name(), name("host")}},
      {"user.create",
       {name(), {"role", Type::text, true, 1, 32}, {"password", Type::text, true, 1, 1024}}},
      {"user.list", {}},
      {"user.delete", {name()}},
      {"user.passwd", {name(), {"password", Type::text, true, 1, 1024}}},
      {"user.whoami", {}},
      {"session.login", {}},
      {"node.show", {}},
      {"node.stats", {}},
      {"daemon.status", {}},
      {"cluster.create",
       {name(), opt_name("first_user"), {"password", Type::text, false, 1, 1024}}},
      {"cluster.status", {}},
      {"node.add",
       {node_id("id", true), {"address", Type::text, true, 1, 255},
        {"node_admin", Type::text, true, 1, 255}}},
      {"cluster.join_key", {{"key", Type::text, true, 64, 64}}},
      {"audit.list",
       {{"since", Type::count, false, 0, 1ull << 40}, {"count", Type::count, false, 1, 1000}}},
      {"node.remove", {node_id("id", true)}},
      {"node.list", {}},
      {"chaos.start",
       {{"seed", Type::count, false, 0, UINT64_MAX},
        {"faults", Type::text, false, 1, 1024},
        {"rate", Type::rate, false, 0, 600}}},
      {"chaos.stop", {{"log", Type::count, false, 0, 1'000'000}}},
      {"chaos.report", {{"log", Type::count, false, 0, 1'000'000}}},
      {"chaos.inject",
       {{"kind", Type::text, true, 1, 64},
        {"duration_ms", Type::count, false, 1, 600'000},
        {"target", Type::count, false, 0, kMaxNodeId},
        {"intensity", Type::count, false, 0, 100'000}}},
      {"shell.actors", {}},
      {"shell.cluster", {}},
      {"shell.inspect", {{"name", Type::text, true, 1, 255}}},
      {"shell.trace", {{"name", Type::text, true, 1, 255}, {"count", Type::count, false, 1, 10'000}}},
  };
  return table;
}

bool valid_name(const std::string& n) {
  return !n.empty() && n.size() <= 63 && std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// At most `n` bytes of `s`, cut before a character, never inside one (the
// reply must stay valid UTF-8).
std::string clip(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "...";
}

Error refuse(const Field& f, const std::string& what) {
  return make_error(std::string("field '") + f.key + "': " + what, EINVAL);
}

Status check_field(const Field& f, const json& v) {
  switch (f.type) {
    case Type::name:
      if (!v.is_string() || !valid_name(v.get<std::string>()))
        return refuse(f, "expected a name of 1 to 63 letters, digits, '_', '-', '.'");
      return ok_status();
    case Type::text:
      if (!v.is_string() || v.get<std::string>().size() < f.min ||
          v.get<std::string>().size() > f.max)
        return refuse(f, "expected a string of " + std::to_string(f.min) + " to " +
                             std::to_string(f.max) + " bytes");
      return ok_status();
    case Type::size:
      if (v.is_number_unsigned()) return ok_status();
      if (v.is_string() && parse_size(v.get<std::string>())) return ok_status();
      return refuse(f, "expected a size: a byte count, or a number with K, M, G or T");
    case Type::count:
      if (!v.is_number_unsigned() || v.get<uint64_t>() < f.min || v.get<uint64_t>() > f.max)
        return refuse(f, "expected a whole number from " + std::to_string(f.min) + " to " +
                             std::to_string(f.max));
      return ok_status();
    case Type::rate: {
      double r = v.is_number() ? v.get<double>() : 0;
      if (!v.is_number() || !std::isfinite(r) || r <= 0 || r > static_cast<double>(f.max))
        return refuse(f, "expected a number more than 0 and at most " + std::to_string(f.max));
      return ok_status();
    }
    case Type::names:
      if (!v.is_array() || v.empty() || v.size() > 1024 ||
          !std::all_of(v.begin(), v.end(),
                       [](const json& e) { return e.is_string() && valid_name(e.get<std::string>()); }))
        return refuse(f, "expected a list of 1 to 1024 names");
      return ok_status();
    case Type::texts:
      if (!v.is_array() || v.size() > f.max ||
          !std::all_of(v.begin(), v.end(), [](const json& e) {
            return e.is_string() && !e.get<std::string>().empty() &&
                   e.get<std::string>().size() <= 255;
          }))
        return refuse(f, "expected a list of at most " + std::to_string(f.max) +
                             " strings of 1 to 255 bytes");
      return ok_status();
    case Type::flag:
      if (!v.is_boolean()) return refuse(f, "expected true or false");
      return ok_status();
    case Type::node_pair:
      if (!v.is_array() || v.size() != 2 ||
          !std::all_of(v.begin(), v.end(), [](const json& e) {
            return e.is_number_unsigned() && e.get<uint64_t>() >= 1 &&
                   e.get<uint64_t>() <= kMaxNodeId;
          }))
        return refuse(f, "expected two node ids");
      return ok_status();
  }
  return refuse(f, "unknown type");
}

// {"token": T} or {"user": NAME, "password": P}.
Status check_auth(const json& auth) {
  auto text = [&](const char* key, size_t max) {
    return auth.contains(key) && auth[key].is_string() && !auth[key].get<std::string>().empty() &&
           auth[key].get<std::string>().size() <= max;
  };
  bool token = auth.is_object() && auth.size() == 1 && text("token", 1024);
  bool password = auth.is_object() && auth.size() == 2 && auth.contains("user") &&
                  auth["user"].is_string() && valid_name(auth["user"].get<std::string>()) &&
                  text("password", 1024);
  if (!token && !password)
    return make_error("field 'auth': expected {\"token\": T} or {\"user\": NAME, \"password\": P}",
                      EINVAL);
  return ok_status();
}

}  // namespace

Status check_admin_request(const json& request) {
  if (!request.is_object()) return make_error("a request is a JSON object", EINVAL);
  auto cmd = request.find("cmd");
  if (cmd == request.end()) return make_error("field 'cmd': missing", EINVAL);
  if (!cmd->is_string()) return make_error("field 'cmd': expected a command name", EINVAL);
  const std::string& name = cmd->get_ref<const std::string&>();
  auto spec = commands().find(name);
  if (spec == commands().end())
    return make_error("unknown command '" + clip(name, 64) + "'", EINVAL);
  for (const auto& [key, value] : request.items()) {
    if (key == "cmd") continue;
    // Who sends it, on every command (docs/security.md): credentials, and
    // where a supervised node's configuration process says it came from.
    if (key == "auth") {
      if (auto st = check_auth(value); !st) return st;
      continue;
    }
    if (key == "from") {
      if (!value.is_string() || value.get<std::string>().size() > 64)
        return make_error("field 'from': expected an address", EINVAL);
      continue;
    }
    const std::string& field = key;  // (clang 14 captures no structured binding)
    auto f = std::find_if(spec->second.begin(), spec->second.end(),
                          [&](const Field& f) { return field == f.key; });
    if (f == spec->second.end())
      return make_error(name + ": unknown field '" + clip(key, 64) + "'", EINVAL);
    if (auto st = check_field(*f, value); !st) return st;
  }
  for (const Field& f : spec->second)
    if (f.required && !request.contains(f.key)) return refuse(f, "missing");
  return ok_status();
}

Result<json> parse_admin_request(std::string_view line) {
  json request = json::parse(line, nullptr, false);
  if (request.is_discarded()) return make_error("the request is not valid JSON", EINVAL);
  if (auto st = check_admin_request(request); !st) return st.error();
  return request;
}

std::string admin_error(const std::string& message) {
  return json{{"ok", false}, {"error", message}}.dump(-1, ' ', false,
                                                       json::error_handler_t::replace);
}

}  // namespace sve

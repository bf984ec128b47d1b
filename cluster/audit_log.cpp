#include "cluster/audit_log.hpp"

#include <algorithm>
#include <fstream>
#include <optional>

#include <spdlog/spdlog.h>

namespace sve {
namespace {

nlohmann::json to_json(const AuditEntry& e) {
  return {{"seq", e.seq},     {"time_ms", e.time_ms}, {"node", e.node},
          {"who", e.who},     {"from", e.from},       {"command", e.command},
          {"ok", e.ok},       {"result", e.result},   {"suppressed", e.suppressed}};
}

// An entry read back from the file; a line that is not one is skipped.
bool from_json(const nlohmann::json& j, AuditEntry& e) {
  try {
    e.seq = j.at("seq").get<uint64_t>();
    e.time_ms = j.at("time_ms").get<uint64_t>();
    e.node = j.at("node").get<uint32_t>();
    e.who = j.at("who").get<std::string>();
    e.from = j.at("from").get<std::string>();
    e.command = j.at("command").get<std::string>();
    e.ok = j.at("ok").get<bool>();
    e.result = j.at("result").get<std::string>();
    e.suppressed = j.value("suppressed", uint64_t{0});
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

nlohmann::json audit_json(const AuditLog& log, const nlohmann::json& request) {
  uint64_t since_ms = 0;
  size_t count = kAuditKeep;
  auto number = [&](const char* key) -> std::optional<uint64_t> {
    auto it = request.is_object() ? request.find(key) : request.end();
    if (it == request.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
      return std::nullopt;
    return it->get<uint64_t>();
  };
  if (auto since = number("since")) since_ms = std::min<uint64_t>(*since, UINT64_MAX / 1000) * 1000;
  if (auto n = number("count")) count = static_cast<size_t>(*n);
  nlohmann::json out = nlohmann::json::array();
  size_t first = log.entries.size() > count ? log.entries.size() - count : 0;
  for (size_t i = first; i < log.entries.size(); ++i)
    if (log.entries[i].time_ms >= since_ms) out.push_back(to_json(log.entries[i]));
  return out;
}

AuditLog AuditFile::read_locked() const {
  AuditLog log;
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    AuditEntry e;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !from_json(j, e)) continue;
    log.next = std::max(log.next, e.seq + 1);
    log.entries.push_back(std::move(e));
  }
  if (log.entries.size() > kAuditKeep)
    log.entries.erase(log.entries.begin(), log.entries.end() - kAuditKeep);
  return log;
}

AuditLog AuditFile::read() const {
  std::lock_guard lock(mu_);
  return read_locked();
}

void AuditFile::append(AuditEntry entry) {
  std::lock_guard lock(mu_);
  if (next_ == 0) {
    AuditLog log = read_locked();
    next_ = log.next;
    lines_ = log.entries.size();
  }
  entry.seq = next_++;
  if (++lines_ > 2 * kAuditKeep) {  // cut back to the newest
    AuditLog log = read_locked();
    std::ofstream out(path_ + ".new", std::ios::trunc);
    for (const auto& e : log.entries) out << to_json(e).dump() << "\n";
    out.close();
    if (out && std::rename((path_ + ".new").c_str(), path_.c_str()) == 0)
      lines_ = log.entries.size() + 1;
  }
  std::ofstream out(path_, std::ios::app);
  out << to_json(entry).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!out) spdlog::warn("audit: cannot append to {}", path_);
}

}  // namespace sve

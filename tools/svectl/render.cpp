#include "tools/svectl/render.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <vector>

#include "util/size.hpp"

namespace sve {
namespace {

using nlohmann::json;

std::string cell(const json& v, const std::string& key) {
  static const std::vector<std::string> sizes = {"capacity",     "free",         "size",
                                                 "extent_size",  "size_bytes",   "cached_bytes",
                                                 "dirty_bytes",  "destaged_bytes",
                                                 "destage_rate", "partner_copies_bytes",
                                                 "virtual_capacity", "real_capacity",
                                                 "used_capacity", "grain_size",
                                                 "free_in_real_capacity"};
  if (!v.contains(key)) return "";
  const json& x = v[key];
  if (x.is_number_unsigned() && std::count(sizes.begin(), sizes.end(), key))
    return format_size(x.get<uint64_t>());
  if (x.is_string()) return x.get<std::string>();
  if (x.is_array()) {
    std::string out;
    for (const auto& e : x) out += (out.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    return out;
  }
  return x.dump();
}

void table(const json& rows, const std::vector<std::string>& columns) {
  std::vector<size_t> width;
  for (const auto& c : columns) width.push_back(c.size());
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); ++i) {
      line.push_back(cell(r, columns[i]));
      width[i] = std::max(width[i], line.back().size());
    }
    cells.push_back(std::move(line));
  }
  auto print = [&](const std::vector<std::string>& line) {
    for (size_t i = 0; i < line.size(); ++i) {
      std::cout << line[i];
      if (i + 1 < line.size()) std::cout << std::string(width[i] - line[i].size() + 2, ' ');
    }
    std::cout << "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : columns) {
    std::string h = c;
    std::transform(h.begin(), h.end(), h.begin(), ::toupper);
    header.push_back(h);
  }
  print(header);
  for (const auto& line : cells) print(line);
}

}  // namespace

// A node's or a vdisk's cache figures.
void render_cache(const json& c) {
  if (c.contains("error")) {
    std::cout << "cache: " << c["error"].get<std::string>() << "\n";
    return;
  }
  std::cout << "cache mode: " << cell(c, "mode") << " (" << cell(c, "why") << ")\n"
            << "cache size: " << cell(c, "size_bytes") << ", cached " << cell(c, "cached_bytes")
            << ", dirty " << cell(c, "dirty_bytes") << "\n"
            << "destaged: " << cell(c, "destaged_bytes") << " (" << cell(c, "destage_rate")
            << "/s over the last second); partner's copies held: "
            << cell(c, "partner_copies_bytes") << "\n";
  if (c.contains("reads")) {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * c.value("hit_ratio", 0.0));
    std::cout << "cache reads: " << cell(c, "reads") << ", hits " << cell(c, "read_hits") << " ("
              << ratio << "), writes " << cell(c, "writes") << "\n";
  }
}

void render_result(const std::string& command, const json& result) {
  if (command == "mdisk.list") {
    table(result, {"name", "status", "capacity", "pool", "path"});
  } else if (command == "pool.list") {
    table(result, {"name", "capacity", "free", "used_capacity", "virtual_capacity",
                   "overallocation", "extent_size", "mdisks"});  // overallocation: percent
  } else if (command == "vdisk.list") {
    table(result, {"name", "size", "thin", "real_capacity", "pool", "policy", "iogrp",
                   "preferred_node", "status"});
  } else if (command == "fcmap.list") {
    json rows = result;
    for (auto& r : rows)
      if (r.contains("progress") && r["progress"].contains("percent"))
        r["progress_pct"] = std::to_string(r["progress"]["percent"].get<uint64_t>()) + "%";
    table(rows, {"name", "source", "target", "state", "progress_pct", "copy_rate", "grain_size",
                 "consistgrp"});
  } else if (command == "fcconsistgrp.list") {
    table(result, {"name", "id", "state", "fcmaps"});
  } else if (command.rfind("fcconsistgrp.", 0) == 0 && result.contains("state")) {
    std::cout << "fcconsistgrp " << cell(result, "name") << ": " << cell(result, "state")
              << ", mappings: " << (cell(result, "fcmaps").empty() ? "none" : cell(result, "fcmaps"))
              << "\n";
  } else if (command.rfind("fcmap.", 0) == 0 && result.contains("state")) {
    std::cout << "fcmap " << cell(result, "name") << ": " << cell(result, "source") << " -> "
              << cell(result, "target") << ", " << cell(result, "state");
    if (result.contains("progress") && result["progress"].contains("percent"))
      std::cout << ", " << result["progress"]["percent"].get<uint64_t>() << "% copied";
    std::cout << "\ncopy rate " << cell(result, "copy_rate") << " ("
              << format_size(result.value("copy_rate_bytes", uint64_t{0})) << "/s), clean rate "
              << cell(result, "clean_rate") << ", grain "
              << cell(result, "grain_size") << (result.value("autodelete", false) ? ", autodelete" : "")
              << (result.value("incremental", false) ? ", incremental" : "");
    if (result.value("bitmap_bytes", uint64_t{0}))
      std::cout << ", bitmap " << format_size(result["bitmap_bytes"].get<uint64_t>())
                << " on the back end";
    std::cout << "\n";
    if (!cell(result, "consistgrp").empty())
      std::cout << "consistency group " << cell(result, "consistgrp") << "\n";
    if (!cell(result, "dependent_fcmaps").empty())
      std::cout << "read through by " << cell(result, "dependent_fcmaps")
                << " (a stop copies them what they read first)\n";
    if (!cell(result, "why").empty()) std::cout << "why: " << cell(result, "why") << "\n";
    if (result.contains("progress") && result["progress"].contains("why"))
      std::cout << "progress unknown: " << result["progress"]["why"].get<std::string>() << "\n";
  } else if (command == "iogrp.list") {
    table(result, {"name", "id", "nodes", "vdisks"});
  } else if (command == "node.list") {
    table(result, {"id", "address", "state", "boss", "lease_remaining_ms"});
  } else if (command == "cluster.status") {
    if (!result.value("in_cluster", false)) {
      std::cout << "node " << result["node"] << " is not in a cluster\n";
      return;
    }
    for (const char* key : {"name", "node", "boss", "members", "quorum", "committed",
                            "generation", "configured", "lease_remaining_ms", "quorum_device"})
      std::cout << key << ": " << cell(result, key) << "\n";
  } else if (command == "chaos.inject") {
    std::cout << "injected " << cell(result, "kind") << " on node " << cell(result, "node")
              << ": " << cell(result, "target") << " for " << cell(result, "duration_ms")
              << " ms\n";
  } else if (command == "chaos.start" || command == "chaos.stop" || command == "chaos.report") {
    std::cout << "chaos monkey on node " << cell(result, "node") << ": "
              << (result.value("running", false) ? "running" : "stopped") << "\n";
    for (const char* key : {"seed", "faults", "rate_per_minute", "injected", "skipped",
                            "by_kind", "next_kind", "next_in_ms"})
      if (result.contains(key)) std::cout << key << ": " << cell(result, key) << "\n";
    for (const auto& e : result.value("log", nlohmann::json::array()))
      std::cout << "  " << e.dump() << "\n";
  } else if (command == "daemon.status") {
    for (const char* key : {"supervisor_pid", "io_pid", "io_serving", "restarts", "last_exit",
                            "io_uptime_ms"})
      std::cout << key << ": " << cell(result, key) << "\n";
  } else if (command == "node.add" || command == "node.remove") {
    std::cout << "node " << result["id"] << (command == "node.add" ? " added" : " removed")
              << "\n";
  } else if (command == "node.stats") {
    for (const auto& c : result["cores"]) {
      const json& sched = c["scheduler"];
      const json& ring = c["ring"];
      const json& buf = c["buffers"];
      const json& req = c["requests"];
      std::cout << "core " << c["core"] << ": messages local " << sched["local"]
                << ", cross-core " << sched["cross_core"] << ", external " << sched["external"]
                << "; ring submitted " << ring["submitted"] << ", in flight "
                << ring["in_flight"] << ", fixed-buffer ops " << ring["fixed_buffer_ops"]
                << ", buffered fallbacks " << ring["buffered_fallbacks"] << "\n"
                << "  buffer pages " << buf["free_pages"] << " free of " << buf["total_pages"]
                << " (front end high water " << buf["frontend"]["high_water"] << ", waits "
                << buf["frontend"]["waits"] << "); request contexts " << req["free"]
                << " free of " << req["capacity"] << " (waits: front end "
                << req["frontend"]["waits"] << ", virt " << req["virt"]["waits"] << ")\n";
    }
    std::cout << "nbd connections: " << result["nbd_connections"] << "\n";
  } else if (command == "vdisk.clear-reservations") {
    const uint64_t registrations = result.value("registrations", uint64_t{0});
    const std::string type = result.value("type", "none");
    if (registrations == 0 && type == "none" && !result.value("reserved", false))
      std::cout << "vdisk " << result.value("name", "") << " had no reservations\n";
    else
      std::cout << "vdisk " << result.value("name", "") << ": cleared " << registrations
                << (registrations == 1 ? " registration" : " registrations") << ", reservation "
                << type
                << (result.value("reserved", false) ? ", RESERVE" : "") << "\n";
  } else if (command == "shell.actors") {
    table(result, {"name", "kind", "core", "mailbox", "handled", "idle_ms"});
  } else if (command == "node.show") {
    render_cache(result);
  } else if (command == "vdisk.show" || command == "vdisk.create" ||
             command == "vdisk.expand" || command == "vdisk.move") {
    for (const char* key : {"name", "id", "status", "pool", "size", "policy", "extent_size",
                            "extent_count", "iogrp", "preferred_node"})
      std::cout << key << ": " << cell(result, key) << "\n";
    if (result.value("thin", false)) {
      for (const char* key : {"virtual_capacity", "real_capacity", "grain_size", "autoexpand"})
        std::cout << key << ": " << cell(result, key) << "\n";
      std::cout << "warning: " << cell(result, "warning") << "%\n";
      if (result.contains("thin_usage") && result["thin_usage"].is_object()) {
        const json& t = result["thin_usage"];
        for (const char* key : {"used_capacity", "free_in_real_capacity", "warning_crossed",
                                "out_of_space"})
          std::cout << key << ": " << cell(t, key) << "\n";
      } else if (command == "vdisk.show") {
        std::cout << "used_capacity: (held by the node that executes it)\n";
      }
    }
    std::cout << "extents per mdisk:";
    for (const auto& [m, n] : result["extents_per_mdisk"].items()) std::cout << " " << m << "=" << n;
    std::cout << "\n";
    if (command == "vdisk.show") {
      if (result.contains("hosts") && !result["hosts"].empty()) {
        std::cout << "hosts:\n";
        table(result["hosts"], {"host", "lun", "read_only"});
      } else {
        std::cout << "hosts: none mapped\n";
      }
      if (result.contains("cache")) render_cache(result["cache"]);
      if (result.contains("paths") && result["paths"].is_array()) {
        std::cout << "paths (ALUA):\n";
        table(result["paths"], {"node", "state", "preferred"});
      }
      if (result.contains("reservations") && result["reservations"].is_object()) {
        const json& r = result["reservations"];
        std::cout << "reservations (SCSI): " << r.value("type", std::string("none"))
                  << ", generation " << r.value("generation", 0u);
        if (r.contains("reserved_by") && r["reserved_by"].is_object())
          std::cout << ", RESERVE held by "
                    << r["reserved_by"].value("initiator", std::string());
        std::cout << "\n";
        if (r.contains("registrations") && r["registrations"].is_array() &&
            !r["registrations"].empty())
          table(r["registrations"], {"initiator", "port", "key", "holder"});
      }
      table(result["extents"], {"index", "mdisk", "mdisk_extent"});
    }
  } else if (command == "audit.list") {
    json rows = result;
    for (auto& r : rows) {
      std::time_t t = static_cast<std::time_t>(r.value("time_ms", uint64_t{0}) / 1000);
      std::tm tm{};
      char when[32];
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
      r["time"] = when;
      r["result"] = r.value("ok", false) ? "ok" : "refused: " + r.value("result", std::string());
      if (r.value("suppressed", uint64_t{0}))
        r["result"] = r["result"].get<std::string>() + " (" +
                      std::to_string(r["suppressed"].get<uint64_t>()) + " refusals before, not recorded)";
    }
    table(rows, {"seq", "time", "node", "who", "command", "result"});
  } else if (command == "user.list") {
    table(result, {"name", "role"});
  } else if (command == "user.whoami") {
    std::cout << "you are " << cell(result, "who") << "\n";
  } else if (command == "user.create" || command == "user.passwd") {
    std::cout << "user " << cell(result, "name") << " (" << cell(result, "role") << ") "
              << (command == "user.create" ? "created" : "has a new password") << "\n";
  } else if (command == "host.list") {
    json rows = result;
    for (auto& r : rows) {
      std::string luns;
      for (const auto& v : r.value("vdisks", json::array()))
        luns += (luns.empty() ? "" : ",") + cell(v, "vdisk") + ":" + cell(v, "lun");
      r["vdisks"] = luns;
    }
    table(rows, {"name", "id", "nbd_identity", "addresses", "iqn", "chap", "vdisks"});
  } else if (command.rfind("host.", 0) == 0 && result.contains("vdisks")) {
    for (const char* key : {"name", "id", "nbd_identity", "addresses", "iqn", "chap"})
      std::cout << key << ": " << cell(result, key) << "\n";
    if (result["vdisks"].empty()) std::cout << "vdisks: none mapped\n";
    else table(result["vdisks"], {"vdisk", "lun", "read_only"});
  } else if (command == "vdisk.map" || command == "vdisk.unmap") {
    std::cout << "vdisk " << cell(result, "name") << " hosts:";
    for (const auto& h : result.value("hosts", json::array()))
      std::cout << " " << cell(h, "host") << " (LUN " << cell(h, "lun")
                << (h.value("read_only", false) ? ", read-only" : "") << ")";
    if (result.value("hosts", json::array()).empty()) std::cout << " none";
    std::cout << "\n";
  } else if (command == "vdisk.check") {
    std::cout << "vdisk " << cell(result, "vdisk") << ": "
              << (result.value("checked", false) ? cell(result, "summary") : cell(result, "why"))
              << "\n";
  } else if (command == "pool.check") {
    std::cout << "pool " << cell(result, "pool") << ": "
              << (result.value("clean", false) ? "clean" : "PROBLEMS FOUND") << "; extents "
              << cell(result, "extents") << "\n";
    for (const auto& v : result["vdisks"])
      std::cout << "  vdisk " << cell(v, "vdisk") << ": "
                << (v.value("checked", false) ? cell(v, "summary") : cell(v, "why")) << "\n";
  } else {
    std::string noun = command.substr(0, command.find('.'));
    std::string verb = command.substr(command.find('.') + 1);
    std::string done = verb == "add" ? "added" : verb == "remove" ? "removed"
                     : verb == "create" ? "created" : verb == "delete" ? "deleted" : verb;
    if (result.value("reattached", false)) done = "back online";
    std::cout << noun << " " << result.value("name", "") << " " << done << "\n";
  }
}

}  // namespace sve

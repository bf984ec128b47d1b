// svectl's --wait for point-in-time copies (copy_wait.hpp).
#include "tools/svectl/copy_wait.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "admin/admin_client.hpp"
#include "util/size.hpp"

namespace sve {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// Where a copy stands, summed over the mappings followed.
struct Progress {
  std::string state;   // the mapping's or group's; "deleted" once autodelete took it
  std::string why;     // of a stopped or suspended one
  uint64_t bytes = 0;  // to copy in all
  uint64_t copied = 0;
  bool known = true;   // the node knows every mapping's progress
  bool snapshot = false;  // a mapping with copy rate 0: it never ends by itself
};

Result<json> ask(const HostPortAddress& admin, const json& request) {
  auto reply = admin_call(admin, request);
  if (!reply) return reply.error();
  if (!reply->is_object() || !reply->value("ok", false)) {
    bool said = reply->is_object() && reply->contains("error") && (*reply)["error"].is_string();
    std::string error = said ? (*reply)["error"].get<std::string>() : "unknown error";
    return make_error(error, EINVAL);
  }
  return (*reply)["result"];
}

void add_map(Progress& p, const json& f) {
  uint64_t grain = f.value("grain_size", uint64_t{0});
  if (f.value("copy_rate", 0u) == 0) p.snapshot = true;
  if (!f.contains("progress") || !f["progress"].contains("grains")) {
    // Idle (copied) or not executed here: all or nothing known.
    if (f.value("state", "") != "idle_or_copied") p.known = false;
    return;
  }
  const json& pr = f["progress"];
  if (!pr.value("known", false)) p.known = false;
  p.bytes += pr.value("grains", uint64_t{0}) * grain;
  p.copied += pr.value("copied_grains", uint64_t{0}) * grain;
}

// A mapping's or a group's progress now.
Result<Progress> poll(const HostPortAddress& admin, bool group, const std::string& name) {
  Progress p;
  if (!group) {
    auto f = ask(admin, {{"cmd", "fcmap.show"}, {"name", name}});
    if (!f) {
      if (f.error().message.find("no fcmap") == std::string::npos) return f.error();
      p.state = "deleted";  // autodelete, once copied
      return p;
    }
    p.state = f.value().value("state", "");
    p.why = f.value().value("why", "");
    add_map(p, f.value());
    return p;
  }
  auto g = ask(admin, {{"cmd", "fcconsistgrp.show"}, {"name", name}});
  if (!g) return g.error();
  p.state = g.value().value("state", "");
  auto maps = ask(admin, {{"cmd", "fcmap.list"}});
  if (!maps) return maps.error();
  for (const auto& f : maps.value())
    if (f.value("consistgrp", "") == name) {
      add_map(p, f);
      if (p.why.empty()) p.why = f.value("why", "");
    }
  return p;
}

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 99 * 3600) return "--:--";
  auto s = static_cast<uint64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                  (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  else
    std::snprintf(text, sizeof text, "%llu:%02llu", (unsigned long long)(s / 60),
                  (unsigned long long)(s % 60));
  return text;
}

std::string bar(unsigned percent, unsigned width) {
  unsigned full = percent * width / 100;
  return "[" + std::string(full, '#') + std::string(width - full, '.') + "]";
}

}  // namespace

int wait_for_copy(const HostPortAddress& admin, const json& request, bool as_json) {
  std::string cmd = request.value("cmd", "");
  bool group = cmd.rfind("fcconsistgrp.", 0) == 0;
  std::string name = request.value("name", "");
  bool terminal = !as_json && ::isatty(STDOUT_FILENO);
  auto period = std::chrono::milliseconds(terminal ? 500 : 250);
  double rate = 0;  // bytes a second, smoothed
  uint64_t last_copied = 0;
  auto last_time = Clock::now(), last_line = last_time - std::chrono::hours(1);
  int last_percent = -1;
  bool said_snapshot = false, first = true;
  for (;;) {
    auto p = poll(admin, group, name);
    if (!p) {
      if (terminal) std::cout << "\n";
      std::cerr << "svectl: " << p.error().message << "\n";
      return 1;
    }
    const Progress& now = p.value();
    auto t = Clock::now();
    double dt = std::chrono::duration<double>(t - last_time).count();
    if (!first && dt > 0 && now.copied >= last_copied) {
      double sample = static_cast<double>(now.copied - last_copied) / dt;
      rate = rate == 0 ? sample : 0.7 * rate + 0.3 * sample;
    }
    first = false;
    last_copied = now.copied;
    last_time = t;
    bool done = now.state == "idle_or_copied" || now.state == "deleted" || now.state == "empty";
    bool failed = now.state == "stopped" || now.state == "suspended";
    unsigned percent = done ? 100
                       : now.bytes ? static_cast<unsigned>(now.copied * 100 / now.bytes)
                                   : 0;
    double left = rate > 0 && now.bytes >= now.copied
                      ? static_cast<double>(now.bytes - now.copied) / rate
                      : -1;
    if (!as_json && now.snapshot && !said_snapshot && !done) {
      said_snapshot = true;
      std::cout << (terminal ? "\r" : "") << "copy rate 0: no background copy; it ends only "
                << "once every grain was written (svectl fcmap set NAME --copyrate N)\n";
    }
    std::string line = now.state + " " + std::to_string(percent) + "%";
    if (!now.known && !done) line += " (progress not known on this node)";
    if (now.state == "copying")
      line += "  " + format_size(static_cast<uint64_t>(rate)) + "/s  " + clock_text(left) + " left";
    if (terminal) {
      std::cout << "\r" << bar(percent, 40) << " " << line << "\x1b[K" << std::flush;
    } else if (!as_json && (static_cast<int>(percent) != last_percent || done || failed) &&
               t - last_line >= std::chrono::seconds(1)) {
      std::cout << line << "\n" << std::flush;
      last_line = t;
      last_percent = static_cast<int>(percent);
    }
    if (done || failed) {
      if (terminal) std::cout << "\n";
      if (as_json) std::cout << json{{"state", now.state}, {"percent", percent}}.dump(2) << "\n";
      if (failed) {
        std::cerr << "svectl: " << (group ? "fcconsistgrp " : "fcmap ") << name << " is "
                  << now.state << (now.why.empty() ? "" : ": " + now.why) << "\n";
        return 1;
      }
      if (!as_json && !terminal && last_percent != 100) std::cout << line << "\n";
      return 0;
    }
    std::this_thread::sleep_for(period);
  }
}

int prepare_first(const HostPortAddress& admin, const json& request) {
  std::string cmd = request.value("cmd", "");
  std::string noun = cmd.substr(0, cmd.find('.'));  // fcmap or fcconsistgrp
  std::string name = request.value("name", "");
  auto prepared = ask(admin, {{"cmd", noun + ".prepare"}, {"name", name}});
  if (!prepared) {
    std::cerr << "svectl: " << prepared.error().message << "\n";
    return 1;
  }
  for (;;) {
    auto now = ask(admin, {{"cmd", noun + ".show"}, {"name", name}});
    if (!now) {
      std::cerr << "svectl: " << now.error().message << "\n";
      return 1;
    }
    std::string state = now.value().value("state", "");
    if (state == "prepared") return 0;
    if (state != "preparing") {
      std::cerr << "svectl: " << noun << " " << name << " is " << state
                << " instead of prepared (stopped meanwhile?)\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace sve

#include "tools/svectl/shell.hpp"

#include <chrono>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include <editline/readline.h>

#include "admin/admin_client.hpp"
#include "tools/svectl/render.hpp"

namespace sve {
namespace {

const char* kShellHelp =
    "  actors          every actor of the node: kind, core, mailbox, messages handled, idle\n"
    "  inspect ACTOR   that actor's own state (an RSM's cluster state, a cache's dirty\n"
    "                  extents, an I/O actor's ring, the interconnect's peers)\n"
    "  trace ACTOR [N] the next N messages (default 10) it handles, as they come\n"
    "  cluster         the actors of every node of the cluster\n"
    "  chaos start [SEED [KIND,...|all [PER_MINUTE]]] | chaos stop | chaos report\n"
    "                  the node's chaos monkey: the only commands here that change\n"
    "                  anything (they inject faults; docs/chaos.md)\n"
    "  help            this list\n"
    "  quit            leave (also Ctrl-D)\n";

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

nlohmann::json call(const HostPortAddress& node, const nlohmann::json& request, bool& ok) {
  auto reply = admin_call(node, request);
  ok = false;
  if (!reply) {
    std::cerr << reply.error().message << "\n";
    return {};
  }
  if (!reply->value("ok", false)) {
    std::cerr << reply->value("error", "unknown error") << "\n";
    return {};
  }
  ok = true;
  return (*reply)["result"];
}

// Starts tracing the actor, then prints its messages as they are recorded
// until N have been (or 30 s have passed).
bool trace(const HostPortAddress& node, const std::string& actor, uint32_t n, bool as_json) {
  bool ok = false;
  call(node, {{"cmd", "shell.trace"}, {"name", actor}, {"count", n}}, ok);
  if (!ok) return false;
  size_t printed = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  nlohmann::json all = nlohmann::json::array();
  for (;;) {
    auto state = call(node, {{"cmd", "shell.inspect"}, {"name", actor}}, ok);
    if (!ok) return false;
    const auto& traced = state["trace"];
    for (; printed < traced.size(); ++printed) {
      if (as_json)
        all.push_back(traced[printed]);
      else
        std::cout << traced[printed]["at_ms"].get<uint64_t>() << " ms  "
                  << traced[printed]["message"].get<std::string>() << "\n" << std::flush;
    }
    if (state.value("trace_left", 1) == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << actor << " handled " << printed << " of " << n << " messages in 30 s\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (as_json) std::cout << all.dump(2) << "\n";
  return true;
}

// One shell command; false if it failed.
bool run_command(const HostPortAddress& node, const std::string& line, bool as_json) {
  auto words = words_of(line);
  if (words.empty()) return true;
  nlohmann::json request;
  if (words[0] == "help") {
    std::cout << kShellHelp;
    return true;
  } else if (words[0] == "actors" && words.size() == 1) {
    request = {{"cmd", "shell.actors"}};
  } else if (words[0] == "cluster" && words.size() == 1) {
    request = {{"cmd", "shell.cluster"}};
  } else if (words[0] == "inspect" && words.size() == 2) {
    request = {{"cmd", "shell.inspect"}, {"name", words[1]}};
  } else if (words[0] == "chaos" && words.size() >= 2 &&
             (words[1] == "stop" || words[1] == "report") && words.size() == 2) {
    request = {{"cmd", "chaos." + words[1]}};
  } else if (words[0] == "chaos" && words.size() >= 2 && words[1] == "start" &&
             words.size() <= 5) {
    request = {{"cmd", "chaos.start"}};
    try {
      if (words.size() > 2) request["seed"] = std::stoull(words[2]);
      if (words.size() > 3) request["faults"] = words[3];
      if (words.size() > 4) request["rate"] = std::stod(words[4]);
    } catch (const std::exception&) {
      std::cerr << "chaos start [SEED [KIND,...|all [PER_MINUTE]]]: numbers expected\n";
      return false;
    }
  } else if (words[0] == "trace" && (words.size() == 2 || words.size() == 3)) {
    uint32_t n = 10;
    if (words.size() == 3) {
      if (words[2].empty() || words[2].find_first_not_of("0123456789") != std::string::npos ||
          words[2].size() > 5) {
        std::cerr << "trace ACTOR [N]: N is a number of messages\n";
        return false;
      }
      n = static_cast<uint32_t>(std::stoul(words[2]));
    }
    return trace(node, words[1], n, as_json);
  } else {
    std::cerr << "unknown command '" << line << "'; help lists them\n";
    return false;
  }
  auto reply = admin_call(node, request);
  if (!reply) {
    std::cerr << reply.error().message << "\n";
    return false;
  }
  if (!reply->value("ok", false)) {
    std::cerr << reply->value("error", "unknown error") << "\n";
    return false;
  }
  const auto& result = (*reply)["result"];
  if (words[0] == "chaos" && !as_json) {
    render_result(request["cmd"], result);
  } else if (as_json || words[0] == "inspect") {
    std::cout << result.dump(2) << "\n";
  } else if (words[0] == "cluster") {
    for (const auto& [node, rows] : result.items()) {
      std::cout << "node " << node << ":\n";
      if (rows.is_array())
        render_result("shell.actors", rows);
      else
        std::cout << "  " << rows.value("error", std::string("?")) << "\n";
    }
  } else {
    render_result("shell.actors", result);
  }
  return true;
}

}  // namespace

int run_shell(HostPortAddress node, const std::vector<std::string>& args, bool as_json) {
  std::string one;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--node" && i + 1 < args.size()) {
      auto parsed = parse_address(args[++i]);
      if (!parsed) {
        std::cerr << "svectl shell: " << parsed.error().message << "\n";
        return 2;
      }
      node = parsed.value();
    } else if (args[i] == "-c" && i + 1 < args.size()) {
      one = args[++i];
    } else {
      std::cerr << "svectl shell [--node HOST:PORT] [-c COMMAND]\n" << kShellHelp;
      return 2;
    }
  }
  if (!one.empty()) return run_command(node, one, as_json) ? 0 : 1;
  std::string history;
  if (const char* home = std::getenv("HOME")) history = std::string(home) + "/.svectl_history";
  using_history();
  if (!history.empty()) read_history(history.c_str());
  std::cout << "sve shell on " << node.to_string() << " (help lists the commands)\n";
  while (char* raw = readline("sve> ")) {
    std::string line(raw);
    std::free(raw);
    if (line == "quit" || line == "exit") break;
    if (!words_of(line).empty()) add_history(line.c_str());
    run_command(node, line, as_json);
  }
  if (!history.empty()) write_history(history.c_str());
  return 0;
}

}  // namespace sve

#include "tools/svectl/shell.hpp"

#include <cstdio>
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
    "  help            this list\n"
    "  quit            leave (also Ctrl-D)\n";

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
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
  } else if (words[0] == "inspect" && words.size() == 2) {
    request = {{"cmd", "shell.inspect"}, {"name", words[1]}};
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
  if (as_json || words[0] == "inspect")
    std::cout << result.dump(2) << "\n";
  else
    render_result("shell.actors", result);
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

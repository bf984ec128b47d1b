// svectl: the SVE admin client.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "admin/admin_client.hpp"
#include "admin/admin_protocol.hpp"
#include "tools/svectl/chaos_run.hpp"
#include "tools/svectl/render.hpp"
#include "tools/svectl/shell.hpp"
#include "util/size.hpp"

using namespace sve;
using nlohmann::json;

namespace {

const char* kUsage =
    "usage: svectl [--admin HOST:PORT] [--json] COMMAND\n"
    "  mdisk add NAME PATH|memory:SIZE|null:SIZE | mdisk list | mdisk remove NAME\n"
    "  pool create NAME [--extent-size SIZE] MDISK... | pool list | pool delete NAME\n"
    "  vdisk create NAME --pool POOL --size SIZE [--policy striped|sequential]\n"
    "         [--iogrp GROUP] [--node N]\n"
    "  vdisk list | vdisk show NAME | vdisk expand NAME --size SIZE | vdisk delete NAME\n"
    "  vdisk move NAME [--iogrp GROUP] [--node N]   (another I/O group or preferred node)\n"
    "  iogrp create NAME NODE NODE | iogrp list | iogrp delete NAME\n"
    "  node show    (this node's cache: size, dirty bytes, mode and why)\n"
    "  node stats   (the data path per core: scheduler, ring, buffer and request pools)\n"
    "  cluster create NAME | cluster status\n"
    "  daemon status   (the node's two processes: I/O process pid, restarts, last exit)\n"
    "  chaos start [--seed S] [--faults KIND,...|all] [--rate PER_MINUTE]\n"
    "  chaos stop | chaos report   (the chaos monkey of this node)\n"
    "  chaos inject KIND [--duration MS] [--target N]   (one fault now, by hand)\n"
    "  chaos run --duration SECONDS [--seed S] [--faults ...] [--rate R]\n"
    "         [--nodes ADMIN,ADMIN,...] [--vdisk NAME]   (monkeys on every node and a\n"
    "         verifying workload; exits non-zero if a write was lost or a read wrong)\n"
    "  shell [--node HOST:PORT] [-c COMMAND]   (the actor debug shell: actors, inspect)\n"
    "  node add --id N HOST:PORT | node remove N | node list\n"
    "sizes take K, M, G, T suffixes (powers of 1024)\n";

struct UsageError {
  std::string message;
};

// Splits "--flag value" options from positional words.
struct Args {
  std::vector<std::string> words;
  std::vector<std::pair<std::string, std::string>> flags;
  std::string flag(const std::string& name) const {
    for (const auto& [k, v] : flags)
      if (k == name) return v;
    return {};
  }
};

Args split(const std::vector<std::string>& in, size_t from) {
  Args a;
  for (size_t i = from; i < in.size(); ++i) {
    if (in[i].rfind("--", 0) == 0) {
      if (i + 1 >= in.size()) throw UsageError{in[i] + " needs a value"};
      a.flags.emplace_back(in[i], in[i + 1]);
      ++i;
    } else {
      a.words.push_back(in[i]);
    }
  }
  return a;
}

std::string size_arg(const std::string& text, const char* what) {
  if (text.empty()) throw UsageError{std::string(what) + " is required"};
  if (!parse_size(text))
    throw UsageError{"invalid size '" + text + "': expected a number with K, M, G or T"};
  return text;
}

uint32_t node_id(const std::string& text) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError{"'" + text + "' is not a node id"};
  return static_cast<uint32_t>(std::stoul(text));
}

std::string number_arg(const std::string& text, const char* what, const char* fallback) {
  if (text.empty()) return fallback;
  if (text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError{std::string(what) + " needs a number"};
  return text;
}

double rate_arg(const std::string& text) {
  char* end = nullptr;
  double rate = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !(rate > 0))
    throw UsageError{"--rate is faults per minute, a positive number"};
  return rate;
}

// --iogrp GROUP and --node N, where a vdisk goes.
void placement(const Args& a, json& r) {
  if (!a.flag("--iogrp").empty()) r["iogrp"] = a.flag("--iogrp");
  if (!a.flag("--node").empty()) r["node"] = node_id(a.flag("--node"));
}

json build_request(const std::vector<std::string>& argv, size_t at) {
  if (at + 1 >= argv.size()) throw UsageError{"missing command"};
  std::string noun = argv[at], verb = argv[at + 1];
  Args a = split(argv, at + 2);
  auto need = [&](size_t n) {
    if (a.words.size() != n) throw UsageError{noun + " " + verb + ": wrong number of arguments"};
  };
  json r{{"cmd", noun + "." + verb}};
  if (noun == "mdisk" && verb == "add") {
    need(2);
    r["name"] = a.words[0];
    r["path"] = a.words[1];
  } else if (noun == "pool" && verb == "create") {
    if (a.words.size() < 2) throw UsageError{"pool create NAME [--extent-size SIZE] MDISK..."};
    r["name"] = a.words[0];
    r["mdisks"] = std::vector<std::string>(a.words.begin() + 1, a.words.end());
    if (!a.flag("--extent-size").empty())
      r["extent_size"] = size_arg(a.flag("--extent-size"), "--extent-size");
  } else if (noun == "vdisk" && verb == "create") {
    need(1);
    r["name"] = a.words[0];
    r["pool"] = a.flag("--pool");
    if (a.flag("--pool").empty()) throw UsageError{"--pool is required"};
    r["size"] = size_arg(a.flag("--size"), "--size");
    if (!a.flag("--policy").empty()) r["policy"] = a.flag("--policy");
    placement(a, r);
  } else if (noun == "vdisk" && verb == "move") {
    need(1);
    r["name"] = a.words[0];
    placement(a, r);
  } else if (noun == "vdisk" && verb == "expand") {
    need(1);
    r["name"] = a.words[0];
    r["size"] = size_arg(a.flag("--size"), "--size");
  } else if ((noun == "node" && (verb == "stats" || verb == "show")) ||
             (noun == "daemon" && verb == "status")) {
    need(0);
  } else if (noun == "chaos" && verb == "start") {
    need(0);
    r["seed"] = std::stoull(number_arg(a.flag("--seed"), "--seed", "1"));
    if (!a.flag("--faults").empty()) r["faults"] = a.flag("--faults");
    if (!a.flag("--rate").empty()) r["rate"] = rate_arg(a.flag("--rate"));
  } else if (noun == "chaos" && verb == "inject") {
    need(1);
    r["kind"] = a.words[0];
    if (!a.flag("--duration").empty())
      r["duration_ms"] = std::stoul(number_arg(a.flag("--duration"), "--duration", "0"));
    if (!a.flag("--target").empty())
      r["target"] = std::stoul(number_arg(a.flag("--target"), "--target", "0"));
  } else if (noun == "chaos" && (verb == "stop" || verb == "report")) {
    need(0);
  } else if (noun == "iogrp" && verb == "create") {
    need(3);
    r["name"] = a.words[0];
    r["nodes"] = {node_id(a.words[1]), node_id(a.words[2])};
  } else if (noun == "iogrp" && verb == "list") {
    need(0);
  } else if (noun == "iogrp" && verb == "delete") {
    need(1);
    r["name"] = a.words[0];
  } else if (noun == "cluster" && verb == "create") {
    need(1);
    r["name"] = a.words[0];
  } else if ((noun == "cluster" && verb == "status") || (noun == "node" && verb == "list")) {
    need(0);
  } else if (noun == "node" && (verb == "add" || verb == "remove")) {
    std::string id = verb == "add" ? a.flag("--id") : (a.words.empty() ? "" : a.words[0]);
    need(verb == "add" ? 1 : 1);
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos || id.size() > 6)
      throw UsageError{verb == "add" ? "node add --id N HOST:PORT" : "node remove N"};
    r["id"] = std::stoul(id);
    if (verb == "add") r["address"] = a.words[0];
  } else if (verb == "list" && (noun == "mdisk" || noun == "pool" || noun == "vdisk")) {
    need(0);
  } else if ((noun == "mdisk" && verb == "remove") || (noun == "pool" && verb == "delete") ||
             (noun == "vdisk" && (verb == "show" || verb == "delete"))) {
    need(1);
    r["name"] = a.words[0];
  } else {
    throw UsageError{"unknown command '" + noun + " " + verb + "'"};
  }
  if (!a.flags.empty() && noun != "pool" && noun != "vdisk" && noun != "chaos" &&
      !(noun == "node" && verb == "add"))
    throw UsageError{"unexpected option " + a.flags[0].first};
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::string admin = std::getenv("SVE_ADMIN") ? std::getenv("SVE_ADMIN")
                                               : "127.0.0.1:" + std::to_string(kDefaultAdminPort);
  bool as_json = false;
  size_t at = 1;
  try {
    for (; at < args.size() && args[at].rfind("--", 0) == 0; ++at) {
      if (args[at] == "--json") {
        as_json = true;
      } else if (args[at] == "--admin" && at + 1 < args.size()) {
        admin = args[++at];
      } else if (args[at] == "--help") {
        std::cout << kUsage;
        return 0;
      } else {
        throw UsageError{"unknown option " + args[at]};
      }
    }
    auto address = parse_address(admin);
    if (!address) throw UsageError{address.error().message};
    if (at + 1 < args.size() && args[at] == "chaos" && args[at + 1] == "run")
      return run_chaos(address.value(), {args.begin() + at + 2, args.end()}, as_json);
    if (at < args.size() && args[at] == "shell")
      return run_shell(address.value(), {args.begin() + at + 1, args.end()}, as_json);
    json request = build_request(args, at);
    auto reply = admin_call(address.value(), request);
    if (!reply) {
      std::cerr << "svectl: " << reply.error().message << "\n";
      return 1;
    }
    if (!reply->value("ok", false)) {
      std::cerr << "svectl: " << reply->value("error", "unknown error") << "\n";
      return 1;
    }
    if (as_json)
      std::cout << (*reply)["result"].dump(2) << "\n";
    else
      render_result(request["cmd"], (*reply)["result"]);
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "svectl: " << e.message << " (svectl --help for usage)\n";
    return 2;
  }
}

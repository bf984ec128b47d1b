#include "tools/sved/options.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>
#include <thread>

#include "util/size.hpp"

namespace sve {

const char* kSvedUsage =
    "usage: sved --data-dir DIR [--admin HOST:PORT] [--nbd HOST:PORT] [--cores N]\n"
    "            [--io-memory SIZE] [--io-requests N] [--cache-size SIZE]\n"
    "            [--max-connections N] [--no-pin]\n"
    "            [--cluster HOST:PORT --node-id N [--quorum-device PATH]\n"
    "             [--heartbeat-ms MS] [--lease-ms MS] [--log-keep N]]\n"
    "            [--log-level trace|debug|info|warn|error] [--demo] [--config FILE]\n"
    "            [--watchdog-ms MS] [--single-process] [--enable-chaos]\n"
    "  --config       options from a file, one a line as here without the dashes\n"
    "                 (deploy/sved.conf); options given here win over the file's\n"
    "  --cluster      this node's cluster address: it joins a cluster (svectl cluster\n"
    "                 create on the first node, svectl node add from a member)\n"
    "  --node-id      this node's number in the cluster (1 and up; the lowest is boss)\n"
    "  --quorum-device  a device or file every node shares: breaks the tie when a\n"
    "                 cluster splits into two exact halves (a record 64 KiB in)\n"
    "  --lease-ms     how long a node serves without hearing the boss (default 3000)\n"
    "  --log-keep     committed cluster events kept in the log (default 256); a node\n"
    "                 further behind gets a snapshot of the cluster state\n"
    "  --io-memory    buffer memory per core, allocated at start (default 64M, at least 64M)\n"
    "  --io-requests  request contexts per core (default 4096)\n"
    "  --cache-size   the node's cache memory, shared out among the cores (default\n"
    "                 128M; 0 turns the cache off)\n"
    "  --max-connections  host connections at once (default 1024); more are closed\n"
    "  --no-pin       do not pin the per-core reactor threads to CPUs\n"
    "  --watchdog-ms  sved runs as two processes: this one (admin API, health\n"
    "                 monitoring) restarts the I/O process when it dies or when no\n"
    "                 core heartbeat came for this long (default 5000)\n"
    "  --single-process  run the I/O process alone, unsupervised (debugging)\n"
    "  --enable-chaos  let the admin API start the chaos monkey (svectl chaos):\n"
    "                 for test clusters only; refused otherwise\n"
    "  --demo   on an empty data dir, create two sparse file mdisks, pool0 and a\n"
    "           1 GiB vdisk vd0\n";

namespace {

// A configuration file: one option a line, as on the command line without
// the leading dashes ("cache-size 256M", "cache-size = 256M", "no-pin"),
// blank lines and # comments ignored.
Result<std::vector<std::string>> read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read configuration file " + path, ENOENT);
  std::vector<std::string> args;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;
    if (auto eq = key.find('='); eq != std::string::npos) {  // key=value
      value = key.substr(eq + 1);
      key.erase(eq);
    }
    if (value.empty() && words >> value && value == "=") words >> value;
    if (value == "=") value.clear();
    if (words >> extra)
      return make_error(path + ":" + std::to_string(number) + ": one option and one value a line",
                        EINVAL);
    if (key == "config")
      return make_error(path + ":" + std::to_string(number) + ": a configuration file cannot "
                        "name another", EINVAL);
    args.push_back("--" + key);
    if (!value.empty()) args.push_back(value);
  }
  return args;
}

}  // namespace

Result<SvedOptions> parse_sved_options(int argc, char** argv) {
  // The configuration file's options come first: the command line's, read
  // after them, win.
  std::vector<std::string> argl;
  std::vector<std::string> given(argv + 1, argv + argc);
  for (size_t i = 0; i < given.size(); ++i) {
    if (given[i] != "--config") continue;
    if (i + 1 >= given.size()) return make_error("--config needs a file", EINVAL);
    auto from_file = read_config_file(given[i + 1]);
    if (!from_file) return from_file.error();
    argl.insert(argl.end(), from_file->begin(), from_file->end());
    given.erase(given.begin() + static_cast<long>(i), given.begin() + static_cast<long>(i) + 2);
    --i;
  }
  argl.insert(argl.end(), given.begin(), given.end());
  return parse_sved_args(argl);
}

Result<SvedOptions> parse_sved_args(const std::vector<std::string>& argl) {
  SvedOptions o;
  o.node.cores = 1;
  int argc = static_cast<int>(argl.size());
  for (int i = 0; i < argc; ++i) {
    std::string arg = argl[i];
    auto value = [&](std::string& out) -> Status {
      if (i + 1 >= argc) return make_error(arg + " needs a value", EINVAL);
      out = argl[++i];
      return ok_status();
    };
    std::string v;
    if (arg == "--demo") {
      o.demo = true;
    } else if (arg == "--data-dir") {
      if (auto st = value(o.node.data_dir); !st) return st.error();
    } else if (arg == "--admin" || arg == "--nbd") {
      if (auto st = value(v); !st) return st.error();
      auto addr = parse_address(v);
      if (!addr) return addr.error();
      (arg == "--admin" ? o.node.admin : o.node.nbd) = addr.value();
    } else if (arg == "--cores") {
      if (auto st = value(v); !st) return st.error();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos ||
          v.size() > 4 || std::stoul(v) == 0)
        return make_error("--cores needs a positive number", EINVAL);
      o.node.cores = static_cast<unsigned>(std::stoul(v));
    } else if (arg == "--io-memory") {
      if (auto st = value(v); !st) return st.error();
      auto size = parse_size(v);
      if (!size) return make_error("--io-memory needs a size such as 256M", EINVAL);
      o.node.core_io.buffer_bytes = size.value();
    } else if (arg == "--cache-size") {
      if (auto st = value(v); !st) return st.error();
      auto size = v == "0" ? std::optional<uint64_t>(0) : parse_size(v);
      if (!size) return make_error("--cache-size needs a size such as 256M, or 0", EINVAL);
      o.node.cache_bytes = *size;
    } else if (arg == "--io-requests") {
      if (auto st = value(v); !st) return st.error();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 7)
        return make_error("--io-requests needs a positive number", EINVAL);
      o.node.core_io.requests = static_cast<uint32_t>(std::stoul(v));
    } else if (arg == "--max-connections") {
      if (auto st = value(v); !st) return st.error();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 7 ||
          std::stoul(v) == 0)
        return make_error("--max-connections needs a positive number", EINVAL);
      o.node.max_connections = std::stoul(v);
    } else if (arg == "--cluster") {
      if (auto st = value(v); !st) return st.error();
      auto addr = parse_address(v);
      if (!addr) return addr.error();
      o.node.cluster = addr.value();
    } else if (arg == "--node-id" || arg == "--heartbeat-ms" || arg == "--lease-ms" ||
               arg == "--log-keep") {
      if (auto st = value(v); !st) return st.error();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 7 ||
          std::stoul(v) == 0)
        return make_error(arg + " needs a positive number", EINVAL);
      uint64_t n = std::stoul(v);
      if (arg == "--node-id") {
        if (n > 64) return make_error("--node-id must be 1 to 64", EINVAL);
        o.node.node_id = static_cast<uint32_t>(n);
      } else if (arg == "--heartbeat-ms") {
        o.node.heartbeat_ms = n;
      } else if (arg == "--log-keep") {
        o.node.log_keep = n;
      } else {
        o.node.lease_ms = n;
      }
    } else if (arg == "--quorum-device") {
      if (auto st = value(o.node.quorum_device); !st) return st.error();
    } else if (arg == "--enable-chaos") {
      o.node.enable_chaos = true;
    } else if (arg == "--single-process") {
      o.single_process = true;
    } else if (arg == "--io-process") {
      o.io_process = true;
    } else if (arg == "--watchdog-ms" || arg == "--admin-fd" ||
               arg == "--nbd-fd" || arg == "--watchdog-fd") {
      if (auto st = value(v); !st) return st.error();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9)
        return make_error(arg + " needs a number", EINVAL);
      uint64_t n = std::stoull(v);
      if (arg == "--watchdog-ms") {
        if (n < 100) return make_error("--watchdog-ms must be at least 100", EINVAL);
        o.watchdog_ms = n;
      } else if (arg == "--admin-fd") {
        o.node.admin_fd = static_cast<int>(n);
      } else if (arg == "--nbd-fd") {
        o.node.nbd_fd = static_cast<int>(n);
      } else {
        o.watchdog_fd = static_cast<int>(n);
      }
    } else if (arg == "--no-pin") {
      o.node.pin = false;
    } else if (arg == "--log-level") {
      if (auto st = value(o.log_level); !st) return st.error();
    } else if (arg == "-h" || arg == "--help") {
      return make_error("", 0);
    } else {
      return make_error("unknown argument '" + arg + "'", EINVAL);
    }
  }
  if (o.node.data_dir.empty()) return make_error("--data-dir is required", EINVAL);
  if (o.node.cluster.has_value() != (o.node.node_id != 0))
    return make_error("--cluster and --node-id go together", EINVAL);
  if (!o.node.quorum_device.empty() && !o.node.cluster)
    return make_error("--quorum-device needs --cluster", EINVAL);
  if (o.node.cluster && o.node.lease_ms < 4 * o.node.heartbeat_ms)
    return make_error("--lease-ms must be at least four heartbeats", EINVAL);
  return o;
}

}  // namespace sve

#include "tools/sved/options.hpp"

#include <cerrno>
#include <thread>

#include "util/size.hpp"

namespace sve {

const char* kSvedUsage =
    "usage: sved --data-dir DIR [--admin HOST:PORT] [--nbd HOST:PORT] [--cores N]\n"
    "            [--io-memory SIZE] [--io-requests N] [--max-connections N] [--no-pin]\n"
    "            [--log-level trace|debug|info|warn|error] [--demo]\n"
    "  --io-memory    buffer memory per core, allocated at start (default 64M, at least 64M)\n"
    "  --io-requests  request contexts per core (default 4096)\n"
    "  --max-connections  host connections at once (default 1024); more are closed\n"
    "  --no-pin       do not pin the per-core reactor threads to CPUs\n"
    "  --demo   on an empty data dir, create two sparse file mdisks, pool0 and a\n"
    "           1 GiB vdisk vd0\n";

Result<SvedOptions> parse_sved_options(int argc, char** argv) {
  SvedOptions o;
  o.node.cores = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) -> Status {
      if (i + 1 >= argc) return make_error(arg + " needs a value", EINVAL);
      out = argv[++i];
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
  return o;
}

}  // namespace sve

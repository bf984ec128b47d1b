#include "tools/sved/options.hpp"

#include <cerrno>
#include <thread>

namespace sve {

const char* kSvedUsage =
    "usage: sved --data-dir DIR [--admin HOST:PORT] [--nbd HOST:PORT] [--cores N]\n"
    "            [--log-level trace|debug|info|warn|error] [--demo]\n"
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

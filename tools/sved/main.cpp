// sved: the SVE node daemon. As the paper splits a node, it runs as two
// processes: the one started (the configuration process: admin API, health
// monitoring, restarts) and its child, the I/O process (the node itself).
#include <sys/resource.h>

#include <iostream>

#include <spdlog/spdlog.h>

#include "tools/sved/io_process.hpp"
#include "tools/sved/options.hpp"
#include "tools/sved/supervisor.hpp"

using namespace sve;

namespace {

// Every host connection is a descriptor: allow as many as the hard limit.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  raise_descriptor_limit();
  auto options = parse_sved_options(argc, argv);
  if (!options) {
    if (options.error().message.empty()) {  // --help
      std::cout << sved_usage();
      return 0;
    }
    std::cerr << "sved: " << options.error().message << " (sved --help for the options)\n";
    return 2;
  }
  auto level = spdlog::level::from_str(options->log_level);
  if (level == spdlog::level::off && options->log_level != "off") {
    std::cerr << "sved: unknown log level '" << options->log_level << "'\n";
    return 2;
  }
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  if (options->io_process || options->single_process) return run_io_process(options.value());
  return run_supervisor(options.value(), argc, argv);
}

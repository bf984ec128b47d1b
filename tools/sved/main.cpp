// sved: the SVE node daemon.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <iostream>

#include <spdlog/spdlog.h>

#include "actors/node.hpp"
#include "hw/data_dir_lock.hpp"
#include "tools/sved/demo.hpp"
#include "tools/sved/options.hpp"
#include "tools/sved/systemd.hpp"

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
    if (!options.error().message.empty())
      std::cerr << "sved: " << options.error().message << "\n";
    std::cerr << kSvedUsage;
    return options.error().message.empty() ? 0 : 2;
  }
  auto level = spdlog::level::from_str(options->log_level);
  if (level == spdlog::level::off && options->log_level != "off") {
    std::cerr << "sved: unknown log level '" << options->log_level << "'\n";
    return 2;
  }
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");

  const std::string& dir = options->node.data_dir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "sved: cannot create data dir " << dir << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  auto lock = DataDirLock::acquire(dir);
  if (!lock) {
    std::cerr << "sved: " << lock.error().message << "\n";
    return 1;
  }

  // Signals are taken synchronously by the main thread; every other thread
  // inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto node = Node::start(options->node);
  if (!node) {
    std::cerr << "sved: " << node.error().message << "\n";
    return 1;
  }
  if (options->demo) {
    if (auto st = ensure_demo_config(*node.value(), dir); !st) {
      std::cerr << "sved: demo setup failed: " << st.error().message << "\n";
      node.value()->stop();
      return 1;
    }
    std::string url = node.value()->nbd_url() + "/vd0";
    std::cout << "\nSVE demo node is serving vdisk vd0 at " << url << "\n"
              << "  nbdinfo " << url << "\n"
              << "  qemu-io -f raw -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' " << url
              << "\n"
              << "  nbd-client " << options->node.nbd.host << " " << options->node.nbd.port
              << " /dev/nbd0 -N vd0\n"
              << "  svectl --admin " << node.value()->admin_address() << " vdisk show vd0\n"
              << "Ctrl-C stops the node; the data stays in " << dir << ".\n"
              << std::endl;
  }
  notify_service_manager("READY=1");
  // Under a systemd watchdog (WatchdogSec=), a keep-alive goes out only
  // while every core of the data path answers: a hung core stops them and
  // the service manager restarts the daemon.
  uint64_t watchdog_ms = watchdog_interval_ms();
  int sig = 0;
  for (;;) {
    if (!watchdog_ms) {
      sigwait(&stop_signals, &sig);
      break;
    }
    timespec wait{static_cast<time_t>(watchdog_ms / 1000),
                  static_cast<long>(watchdog_ms % 1000) * 1000000};
    sig = sigtimedwait(&stop_signals, nullptr, &wait);
    if (sig > 0) break;
    try {
      node.value()->io_stats();  // asks every core; throws if one does not answer
      notify_service_manager("WATCHDOG=1");
    } catch (const std::exception& e) {
      spdlog::error("watchdog: {}; no keep-alive sent", e.what());
    }
  }
  spdlog::info("signal {}: shutting down", sig);
  notify_service_manager("STOPPING=1");
  node.value()->stop();
  return 0;
}

#include "tools/sved/io_process.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>

#include <spdlog/spdlog.h>

#include "node/node.hpp"
#include "hw/data_dir_lock.hpp"
#include "hw/watchdog/watchdog.hpp"
#include "tools/sved/demo.hpp"
#include "tools/sved/systemd.hpp"

namespace sve {

namespace {

void print_demo_banner(Node& node, const SvedOptions& options) {
  std::string url = node.nbd_url() + "/vd0";
  std::cout << "\nSVE demo node is serving vdisk vd0 at " << url << "\n"
            << "  nbdinfo " << url << "\n"
            << "  qemu-io -f raw -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' " << url << "\n"
            << "  nbd-client " << options.node.nbd.host << " " << options.node.nbd.port
            << " /dev/nbd0 -N vd0\n"
            << "  svectl --admin " << node.admin_address() << " vdisk show vd0\n"
            << "Ctrl-C stops the node; the data stays in " << options.node.data_dir << ".\n"
            << std::endl;
}

}  // namespace

int run_io_process(const SvedOptions& options) {
  const std::string& dir = options.node.data_dir;
  // Under a configuration process, that process holds the data dir's lock
  // for the node, across restarts of this one.
  std::optional<DataDirLock> lock;
  if (!options.io_process) {
    auto taken = lock_data_dir(dir);
    if (!taken) {
      std::cerr << "sved: " << taken.error().message << "\n";
      return 1;
    }
    lock = std::move(taken.value());
  }

  // Signals are taken synchronously by the main thread; every other thread
  // inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  WatchdogFeed feed(options.watchdog_fd);
  NodeOptions node_options = options.node;
  node_options.supervised = options.io_process;
  if (!options.init_admin.empty()) {
    const char* password = std::getenv("SVE_INIT_ADMIN_PASSWORD");
    node_options.init_admin = {options.init_admin, password ? password : ""};
  }
  if (feed.attached()) node_options.hold_down = [&feed](uint32_t ms) { feed.hold_down(ms); };
  auto node = Node::start(node_options);
  if (!node) {
    std::cerr << "sved: " << node.error().message << "\n";
    return 1;
  }
  if (options.demo) {
    if (auto st = ensure_demo_config(*node.value(), dir); !st) {
      std::cerr << "sved: demo setup failed: " << st.error().message << "\n";
      node.value()->stop();
      return 1;
    }
    print_demo_banner(*node.value(), options);
  }

  feed.ready();
  notify_service_manager("READY=1");
  // Keep-alives go out only while every core of the data path and the
  // cluster actor answer: a hung core or a dead cluster actor stops them,
  // and the configuration process (or, alone, systemd's WatchdogSec=)
  // restarts this process.
  uint64_t systemd_ms = watchdog_interval_ms();
  uint64_t every_ms = feed.attached() ? std::max<uint64_t>(50, options.watchdog_ms / 5) : 0;
  if (systemd_ms) every_ms = every_ms ? std::min(every_ms, systemd_ms) : systemd_ms;
  int sig = 0;
  for (;;) {
    if (!every_ms) {
      sigwait(&stop_signals, &sig);
      break;
    }
    timespec wait{static_cast<time_t>(every_ms / 1000),
                  static_cast<long>(every_ms % 1000) * 1000000};
    sig = sigtimedwait(&stop_signals, nullptr, &wait);
    if (sig > 0) break;
    try {
      node.value()->check_health();  // throws if a core or the cluster actor does not answer
      feed.feed();
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

}  // namespace sve

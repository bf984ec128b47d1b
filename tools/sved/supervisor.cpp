#include "tools/sved/supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "admin/admin_schema.hpp"
#include "admin/admin_server.hpp"
#include "hw/data_dir_lock.hpp"
#include "hw/nvram/nvram.hpp"
#include "hw/port/tcp.hpp"
#include "hw/watchdog/watchdog.hpp"
#include "io/tls/admin_tls.hpp"
#include "tools/sved/systemd.hpp"

namespace sve {
namespace {

constexpr uint64_t kStartLimitMs = 120'000;  // loading a large model, formatting
constexpr uint64_t kStopLimitMs = 60'000;    // a clean stop destages (at most 30 s)
constexpr uint64_t kMaxRestartDelayMs = 5'000;

// What the admin API says about the I/O process, shared with its threads.
struct ChildState {
  std::mutex mu;
  std::condition_variable changed;  // serving became true
  pid_t pid = 0;
  bool serving = false;
  uint32_t restarts = 0;
  std::string last_exit;  // how the previous one ended
  uint64_t started_ms = 0;
};

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "ended";
}

// The admin API of the node: answered here when it is about the processes,
// otherwise passed to the I/O process over the socket this process keeps
// for it (a request sent while it restarts waits for the next one).
class AdminRelay {
 public:
  AdminRelay(ChildState& child, HostPortAddress inner, std::string nbd)
      : child_(child), inner_(std::move(inner)), nbd_(std::move(nbd)) {}

  std::string handle(const std::string& line, const std::string& peer) {
    // Checked here, whole, before anything reads it: a malformed request
    // never reaches the I/O process.
    auto request = parse_admin_request(line);
    if (!request) return admin_error(request.error().message);
    std::string cmd = admin_command(*request);
    // The I/O process sees every request come from this process: it is
    // told where it came from (whatever the client wrote there).
    (*request)["from"] = peer;
    if (cmd == "daemon.status") return nlohmann::json{{"ok", true}, {"result", status()}}.dump();
    {
      // A request that comes while the I/O process (re)starts waits for it.
      std::unique_lock lock(child_.mu);
      if (!child_.changed.wait_for(lock, std::chrono::seconds(15), [&] { return child_.serving; }))
        return error("the node's I/O process is not serving" +
                     (child_.last_exit.empty() ? std::string()
                                               : " (the last one " + child_.last_exit + ")") +
                     ": try again shortly");
    }
    auto fd = connect_tcp(inner_);
    if (!fd) return error("cannot reach the I/O process: " + fd.error().message);
    timeval timeout{120, 0};  // the longest admin request (a trace) takes less
    ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string out = request->dump() + "\n";
    if (!send_all(fd->get(), out.data(), out.size())) return error("the I/O process went away");
    std::string reply;
    char c;
    while (recv_all(fd->get(), &c, 1) && c != '\n') reply.push_back(c);
    if (reply.empty()) return error("the I/O process went away before it answered");
    return reply;
  }

 private:
  static std::string error(const std::string& message) { return admin_error(message); }
  nlohmann::json status() {
    std::lock_guard lock(child_.mu);
    return {{"supervised", true},
            {"nbd", nbd_},
            {"supervisor_pid", ::getpid()},
            {"io_pid", child_.pid},
            {"io_serving", child_.serving},
            {"restarts", child_.restarts},
            {"last_exit", child_.last_exit},
            {"io_uptime_ms", child_.pid ? watchdog_clock_ms() - child_.started_ms : 0}};
  }

  ChildState& child_;
  HostPortAddress inner_;
  std::string nbd_;
};

struct Listeners {
  UniqueFd admin_public;  // served here
  UniqueFd admin_inner;   // the I/O process's, kept across its restarts
  HostPortAddress inner_address;
  UniqueFd nbd;           // the I/O process's, kept across its restarts
  UniqueFd iscsi;         // (when on) likewise
};

Result<Listeners> bind_listeners(const SvedOptions& options) {
  Listeners l;
  auto admin = listen_tcp(options.node.admin);
  if (!admin) return admin.error();
  auto nbd = listen_tcp(options.node.nbd);
  if (!nbd) return nbd.error();
  if (options.node.iscsi) {
    auto iscsi = listen_tcp(*options.node.iscsi);
    if (!iscsi) return iscsi.error();
    l.iscsi = std::move(iscsi.value());
  }
  auto inner = listen_tcp({"127.0.0.1", 0});
  if (!inner) return inner.error();
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(inner->get(), reinterpret_cast<sockaddr*>(&addr), &len);
  l.inner_address = {"127.0.0.1", ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)};
  l.admin_public = std::move(admin.value());
  l.admin_inner = std::move(inner.value());
  l.nbd = std::move(nbd.value());
  return l;
}

// fork + exec of this same program as the I/O process, with the sockets
// and the watchdog pipe's write end as inherited descriptors.
// The child feeds the watchdog five times per `feed_limit_ms`.
pid_t start_io_process(int argc, char** argv, const Listeners& l, int watchdog_fd,
                       uint64_t feed_limit_ms) {
  std::vector<std::string> args(argv, argv + argc);
  args.insert(args.end(), {"--io-process", "--admin-fd", std::to_string(l.admin_inner.get()),
                           "--nbd-fd", std::to_string(l.nbd.get()), "--watchdog-fd",
                           std::to_string(watchdog_fd), "--watchdog-ms",
                           std::to_string(feed_limit_ms)});
  if (l.iscsi.valid()) args.insert(args.end(), {"--iscsi-fd", std::to_string(l.iscsi.get())});
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child: dies with this process; its signals unblocked; systemd is
  // spoken to by this process only.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  for (int fd : {l.admin_inner.get(), l.nbd.get(), l.iscsi.get(), watchdog_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
  ::execv("/proc/self/exe", cargs.data());
  ::_exit(127);
}

}  // namespace

int run_supervisor(const SvedOptions& options, int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The node's data dir is locked by this process for as long as it lives:
  // the I/O processes it starts inherit the lock, and none can be left
  // over from before a restart (each one is waited for).
  auto lock = lock_data_dir(options.node.data_dir);
  if (!lock) {
    std::cerr << "sved: " << lock.error().message << "\n";
    return 1;
  }
  auto listeners = bind_listeners(options);
  if (!listeners) {
    std::cerr << "sved: " << listeners.error().message << "\n";
    return 1;
  }
  // The public admin port speaks TLS only when given certificates (the
  // I/O process's port behind it is loopback, and stays plain).
  AdminStreamAccept secure;
  if (!options.node.admin_certificates.empty()) {
    auto server = admin_tls_server(options.node.admin_certificates);
    if (!server) {
      std::cerr << "sved: --admin-certificates: " << server.error().message << "\n";
      return 1;
    }
    secure = std::move(server.value());
    spdlog::info("admin API: TLS only (certificates from {})", options.node.admin_certificates);
  }
  ChildState child;
  AdminRelay relay(child, listeners->inner_address, options.node.nbd.to_string());
  AdminServer admin(std::move(listeners->admin_public),
                    [&relay](const std::string& line, const std::string& peer) {
                      return relay.handle(line, peer);
                    },
                    AdminServerLimits{}, std::move(secure));
  admin.start();

  // systemd's keep-alives are passed on as the I/O process feeds: it must
  // feed at least as often as they are due.
  uint64_t systemd_ms = watchdog_interval_ms();
  uint64_t feed_limit_ms =
      systemd_ms ? std::min<uint64_t>(options.watchdog_ms, std::max<uint64_t>(100, systemd_ms * 5))
                 : options.watchdog_ms;
  uint64_t last_systemd_ms = 0;
  bool told_ready = false, stopping = false;
  uint64_t restart_delay_ms = 0;
  for (bool restarted = false;; restarted = true) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      spdlog::critical("supervisor: cannot create the watchdog pipe: {}", std::strerror(errno));
      return 1;
    }
    ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
    pid_t pid = start_io_process(argc, argv, *listeners, pipe_fds[1], feed_limit_ms);
    ::close(pipe_fds[1]);
    if (pid < 0) {
      spdlog::critical("supervisor: cannot start the I/O process: {}", std::strerror(errno));
      return 1;
    }
    {
      std::lock_guard lock(child.mu);
      child.pid = pid;
      child.started_ms = watchdog_clock_ms();
    }
    WatchdogMonitor watchdog(UniqueFd(pipe_fds[0]), options.watchdog_ms, kStartLimitMs);
    uint64_t stop_sent_ms = 0;
    bool killed = false, pipe_closed = false;
    int status = 0;
    for (;;) {
      auto event = pipe_closed ? WatchdogMonitor::Event::quiet : watchdog.wait(100);
      if (pipe_closed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (event == WatchdogMonitor::Event::closed) pipe_closed = true;
      if (event == WatchdogMonitor::Event::ready) {
        std::lock_guard lock(child.mu);
        child.serving = true;
        child.changed.notify_all();
        if (!told_ready) notify_service_manager("READY=1");
        told_ready = true;
        if (restarted) spdlog::info("supervisor: I/O process {} serves again", pid);
      }
      if ((event == WatchdogMonitor::Event::fed || event == WatchdogMonitor::Event::ready) &&
          systemd_ms && watchdog_clock_ms() - last_systemd_ms >= systemd_ms) {
        notify_service_manager("WATCHDOG=1");
        last_systemd_ms = watchdog_clock_ms();
      }
      if (event == WatchdogMonitor::Event::expired && !killed && !stopping) {
        spdlog::error("supervisor: I/O process {} is hung (no heartbeat for {} ms): killing it",
                      pid, watchdog.silent_ms());
        ::kill(pid, SIGKILL);
        killed = true;
      }
      timespec zero{0, 0};
      int sig = sigtimedwait(&signals, nullptr, &zero);
      if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
        spdlog::info("supervisor: signal {}: stopping the I/O process", sig);
        notify_service_manager("STOPPING=1");
        stopping = true;
        stop_sent_ms = watchdog_clock_ms();
        ::kill(pid, SIGTERM);
      }
      if (stopping && !killed && watchdog_clock_ms() - stop_sent_ms > kStopLimitMs) {
        spdlog::error("supervisor: I/O process {} did not stop within {} s: killing it", pid,
                      kStopLimitMs / 1000);
        ::kill(pid, SIGKILL);
        killed = true;
      }
      if (::waitpid(pid, &status, WNOHANG) == pid) break;
    }
    // What it wrote just before it ended (a hold-down) is still in the pipe.
    for (int i = 0; i < 16 && !pipe_closed; ++i)
      pipe_closed = watchdog.wait(0) == WatchdogMonitor::Event::closed;
    bool was_serving;
    {
      std::lock_guard lock(child.mu);
      was_serving = watchdog.is_ready();
      child.serving = false;
      child.pid = 0;
      child.last_exit = std::to_string(pid) + " " + describe_exit(status);
    }
    if (int saved = save_nvram_files(options.node.data_dir))
      spdlog::info("supervisor: saved {} non-volatile memory files", saved);
    // A stop signal to the whole process group (Ctrl-C) may reach the I/O
    // process first; and it exits 0 only when told to stop.
    timespec zero{0, 0};
    for (int sig; (sig = sigtimedwait(&signals, nullptr, &zero)) > 0;)
      stopping |= sig == SIGTERM || sig == SIGINT;
    stopping |= WIFEXITED(status) && WEXITSTATUS(status) == 0 && !killed;
    if (stopping) {
      admin.stop();
      spdlog::info("supervisor: I/O process {}; stopped", child.last_exit);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    // One that never served and exited by itself was refused its start (a
    // bad option, a busy port, a locked data dir): starting it again would
    // only repeat that.
    if (!was_serving && WIFEXITED(status) && !killed) {
      admin.stop();
      return WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
    }
    // Crashing again soon after a restart: back off, up to 5 s. One that
    // asked to stay down a while (the chaos monkey's kill-node) does.
    bool soon = watchdog_clock_ms() - child.started_ms < 10'000;
    restart_delay_ms = soon ? std::min(kMaxRestartDelayMs, std::max<uint64_t>(100, restart_delay_ms * 2)) : 0;
    if (watchdog.hold_down_ms()) restart_delay_ms = std::min<uint64_t>(watchdog.hold_down_ms(), 60'000);
    {
      std::lock_guard lock(child.mu);
      ++child.restarts;
      spdlog::error("supervisor: I/O process {}; restarting it (restart {}){}", child.last_exit,
                    child.restarts,
                    restart_delay_ms ? " in " + std::to_string(restart_delay_ms) + " ms" : "");
    }
    // A stop asked for during the pause is honoured at once.
    timespec pause{static_cast<time_t>(restart_delay_ms / 1000),
                   static_cast<long>(restart_delay_ms % 1000) * 1000000};
    for (int sig; restart_delay_ms && (sig = sigtimedwait(&signals, nullptr, &pause)) > 0;)
      if (sig == SIGTERM || sig == SIGINT) {
        admin.stop();
        return 0;
      }
  }
}

}  // namespace sve

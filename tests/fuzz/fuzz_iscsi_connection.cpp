// Fuzz target: whatever an initiator sends on a logged-in iSCSI connection
// (PDUs of any kind and length, in any order, digests right or wrong, data
// segments where none belong, commands for LUNs that are not there) ends,
// once it closes its side, in the connection closed: never a crash, never
// a connection that hangs on, and every task, request context and buffer
// page given back. The connection runs on a real ring over a socket pair
// with a stack below it that answers every request (now and then with an
// error); the harness is the reactor, the initiator and the cluster.
//
// Input: byte 0 the session's choices (digests, immediate data, initial
// R2T, a second LUN, thin units, a read-only unit, errors from the stack),
// byte 1 the data segment sizes, bytes 2..5 the expected CmdSN; the rest is
// what the initiator sends. With a second LUN, another nexus's PREEMPT AND
// ABORT of this one's registration for it arrives once the stack has seen
// 1 + (byte 5 & 7) requests, whatever the tasks are doing then: every drain
// it starts must be reported (on_preempt_drained) before the end. Likewise
// another nexus's LUN reset of LUN 0 once it has seen 1 + (byte 5 >> 3 & 7):
// its `done` must run before the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <functional>
#include <memory>

#include <spdlog/spdlog.h>

#include "io/iscsi/port/iscsi_connection.hpp"
#include "io/reactor/core_io.hpp"

using namespace sve;

namespace {

// The stack: every request answered, a few with an error.
struct AnsweringStack final : IoServer {
  unsigned fail_every = 0;  // 0: never
  unsigned seen = 0;
  void submit(IoRequestPtr r) override {
    ++seen;
    int status = fail_every && seen % fail_every == 0 ? EIO : 0;
    complete(std::move(r), status);
  }
};

struct Reactor {
  std::unique_ptr<CoreIo> core;
  std::unique_ptr<iscsi::TaskPool> tasks;
  AnsweringStack stack;
  Reactor() {
    // A log line per protocol error: only when asked (SVE_FUZZ_LOG=1).
    if (!std::getenv("SVE_FUZZ_LOG")) spdlog::set_level(spdlog::level::off);
    CoreIoConfig config;
    config.buffer_bytes = 64ull << 20;  // the least a core takes
    config.requests = 256;
    auto made = CoreIo::create(0, config);
    if (!made) {
      std::fprintf(stderr, "core: %s\n", made.error().message.c_str());
      std::abort();
    }
    core = std::move(made.value());
    CoreIo::set_current(core.get());
    tasks = std::make_unique<iscsi::TaskPool>("fuzz.tasks", core->requests().capacity());
  }
};

Reactor& reactor() {
  static Reactor r;
  return r;
}

void loopback_tcp(int fds[2]) {
  static int listener = -1;
  static sockaddr_in addr{};
  if (listener < 0) {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 16) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      std::abort();
  }
  fds[1] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fds[1], reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  fds[0] = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fds[0] < 0) std::abort();
}

void write_all_nonblocking(int fd, const uint8_t* data, size_t size, size_t& at) {
  while (at < size) {
    ssize_t n = ::send(fd, data + at, size - at, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

void drain(int fd) {
  char sink[65536];
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6 || size > 65536) return 0;
  Reactor& r = reactor();
  const uint8_t choices = data[0];
  r.stack.fail_every = choices & 0x80 ? 3 : 0;
  r.stack.seen = 0;

  iscsi::ConnectionSetup setup;
  setup.params.header_digest = choices & 0x01;
  setup.params.data_digest = choices & 0x02;
  setup.params.immediate_data = choices & 0x04;
  setup.params.initial_r2t = choices & 0x08;
  setup.params.target_max_recv = 512u << (data[1] & 7);
  setup.params.initiator_max_recv = 512u << ((data[1] >> 3) & 7);
  setup.params.first_burst_length = std::min<uint32_t>(setup.params.first_burst_length,
                                                       16u * setup.params.target_max_recv);
  setup.params.max_outstanding_r2t = 1 + ((data[1] >> 6) & 3);
  std::memcpy(&setup.exp_cmd_sn, data + 2, 4);
  setup.stat_sn = 1;
  setup.command_window = 32;
  setup.max_in_flight = 64;
  setup.target_name = "iqn.2026-12.org.sve:fuzz";
  setup.initiator = "iqn.2026-12.org.sve:fuzz-initiator";
  setup.nexus = {"iqn.2026-12.org.sve:fuzz-initiator,i,0x000000000001", 1};
  for (uint16_t lun = 0; lun < (choices & 0x10 ? 2 : 1); ++lun) {
    iscsi::Unit u;
    u.lun = lun;
    u.lu.volume = 1 + lun;
    u.lu.blocks = 2048;  // 1 MiB
    u.lu.thin = choices & 0x20;
    u.lu.read_only = lun == 1 && (choices & 0x40);
    u.lu.serial = "600507680c80fuzz";
    if (lun == 1) u.lu.reservations = std::make_shared<Reservations>();
    setup.units.push_back(u);
  }
  const bool preempts = setup.units.size() == 2;
  const unsigned preempt_after = 1 + (data[5] & 7);
  bool preempted = false;
  unsigned drains_started = 0, drains_reported = 0;
  const unsigned reset_after = 1 + ((data[5] >> 3) & 7);
  bool reset = false, reset_done = false;
  setup.on_preempt_drained = [&drains_reported] { ++drains_reported; };
  // The cluster answers reservation requests at the next turn.
  std::deque<iscsi::Task*> reservations;
  iscsi::IscsiConnection* connection_ptr = nullptr;
  setup.on_reservation = [&](iscsi::IscsiConnection*, iscsi::Task* task, uint32_t,
                             const ReservationRequest&) {
    if (task) reservations.push_back(task);
  };
  setup.on_reset = [](iscsi::IscsiConnection*, iscsi::Task*, uint32_t, bool) { return false; };

  // A TCP connection over loopback, as from a real initiator.
  int fds[2];
  loopback_tcp(fds);
  iscsi::CoreRoute route;
  route.tops = {&r.stack};
  // What the connection posts to its core (the held tasks' release) runs
  // at the next turn.
  std::deque<std::function<void()>> posted;
  route.post = [&posted](unsigned, std::function<void()> task) {
    posted.push_back(std::move(task));
  };
  bool closed = false;
  auto connection = std::make_unique<iscsi::IscsiConnection>(
      fds[0], std::move(setup), *r.core, *r.tasks, std::move(route),
      [&closed](iscsi::IscsiConnection*) { closed = true; });
  connection_ptr = connection.get();
  connection->start();

  const uint8_t* stream = data + 6;
  size_t stream_bytes = size - 6, sent = 0;
  bool shut = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!closed) {
    write_all_nonblocking(fds[1], stream, stream_bytes, sent);
    if (sent == stream_bytes && !shut) {
      ::shutdown(fds[1], SHUT_WR);  // the initiator is done
      shut = true;
    }
    drain(fds[1]);
    r.core->ring().poll();
    if (preempts && !preempted && r.stack.seen >= preempt_after) {
      // (Before the stack's answers run: its tasks are still in it.)
      preempted = true;
      std::vector<iscsi::Unit> units = connection->units();
      auto state = std::make_shared<Reservations>();
      state->attention = 1;
      state->told = {{connection->nexus().initiator, connection->nexus().port, false, 0}};
      state->told_code = kRegistrationsPreempted;
      state->told_abort = true;
      units[1].lu.reservations = state;
      if (connection->set_units(std::move(units))) ++drains_started;
      spdlog::info("fuzz: PREEMPT AND ABORT after {} requests: {} drain", r.stack.seen,
                   drains_started ? "a" : "no");
    }
    if (!reset && r.stack.seen >= reset_after) {
      reset = true;
      connection->reset_elsewhere(connection->units()[0].lu.volume, false,
                                  [&reset_done] { reset_done = true; });
    }
    r.core->completions().run();
    for (size_t n = posted.size(); n > 0; --n) {
      auto task = std::move(posted.front());
      posted.pop_front();
      task();
    }
    while (!reservations.empty()) {
      iscsi::Task* task = reservations.front();
      reservations.pop_front();
      ReservationOutcome refused;
      refused.result = ReservationResult::conflict;
      connection_ptr->reservation_done(*task, refused);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "the connection did not end after its initiator closed (%s)\n",
                   connection->end_reason().c_str());
      std::abort();
    }
  }
  if (drains_reported != drains_started) {
    std::fprintf(stderr, "%u preemption drains started, %u reported\n", drains_started,
                 drains_reported);
    std::abort();
  }
  if (reset && !reset_done) {
    std::fprintf(stderr, "another nexus's LUN reset was never told its tasks were over\n");
    std::abort();
  }
  connection.reset();
  ::close(fds[0]);  // (the port's to close, as the connection's socket)
  ::close(fds[1]);
  // Everything the connection took is back.
  if (r.tasks->free_count() != r.tasks->capacity() || r.core->frontend_requests().used() != 0 ||
      r.core->frontend_buffers().used() != 0) {
    std::fprintf(stderr, "left taken: %zu tasks, %lu requests, %lu buffer pages\n",
                 r.tasks->capacity() - r.tasks->free_count(),
                 static_cast<unsigned long>(r.core->frontend_requests().used()),
                 static_cast<unsigned long>(r.core->frontend_buffers().used()));
    std::abort();
  }
  return 0;
}

// The ring's completions reach a reactor that never sleeps: a busy core
// polls its ring between jobs and must see a socket's receive finish then,
// not only when it next waits (uring_engine.cpp, TASKRUN_FLAG).
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "hw/port/tcp.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/fd.hpp"

using namespace sve;

namespace {

struct Recorded final : RingHandler {
  int result = -1;
  bool done = false;
  void on_ring_complete(int res) override {
    result = res;
    done = true;
  }
};

}  // namespace

TEST_CASE("uring engine: a busy reactor's polls reap a receive another thread's send finished") {
  auto ring = std::move(UringEngine::create(64).value());
  // TCP, as between nodes and hosts: a receive waits on the socket's poll
  // in the kernel (a Unix socket's would wait in a kernel worker thread,
  // whose completion needs nothing from this one).
  auto pair = loopback_tcp_pair();
  REQUIRE(pair);
  auto& [a, b] = pair.value();
  char in[16] = {};
  Recorded receive;
  io_uring_prep_recv(ring->sqe_for(&receive), a.get(), in, sizeof in, 0);
  ring->poll();  // submitted: nothing to read yet, so it waits in the kernel
  REQUIRE_FALSE(receive.done);
  // The peer (another core) sends while this thread spins without a
  // system call, as a busy reactor does between its jobs: the completion
  // work the send queued for this thread runs only if a poll enters the
  // kernel for it (else at the next timer tick, milliseconds later).
  // Each on a CPU of its own where there are two: were the peer to run on
  // this thread's CPU, this thread's return from being preempted would
  // run the work anyway, and the test would prove nothing.
  cpu_set_t mine;
  REQUIRE(::sched_getaffinity(0, sizeof mine, &mine) == 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mine)) cpus.push_back(c);
  auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::sched_setaffinity(0, sizeof one, &one);
  };
  if (cpus.size() >= 2) pin(cpus[0]);
  std::atomic<bool> sent{false};
  ssize_t wrote = 0;
  std::thread peer([&] {
    if (cpus.size() >= 2) pin(cpus[1]);
    wrote = ::write(b.get(), "hello", 5);
    sent.store(true, std::memory_order_release);
  });
  while (!sent.load(std::memory_order_acquire)) {
  }
  for (int i = 0; i < 3 && !receive.done; ++i) ring->poll();
  bool reaped = receive.done;
  peer.join();
  ::sched_setaffinity(0, sizeof mine, &mine);
  REQUIRE(wrote == 5);
  CHECK(reaped);
  for (int i = 0; i < 10000 && !receive.done; ++i) ring->poll();
  CHECK(receive.result == 5);
  CHECK(std::string(in, 5) == "hello");
}

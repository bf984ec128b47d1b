#include "actors/reactor/reactor_scheduler.hpp"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include <caf/all.hpp>
#include <caf/policy/unprofiled.hpp>
#include <caf/scheduler/coordinator.hpp>

#include <spdlog/spdlog.h>

#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

// One core's queues. `local` is touched only by the core's own thread;
// other threads post to `inbox` and wake the core through its ring.
struct CoreQueue {
  CoreIo* io = nullptr;
  caf::execution_unit* unit = nullptr;
  std::deque<caf::resumable*> local;
  std::mutex mu;
  std::vector<caf::resumable*> inbox;
  std::vector<caf::resumable*> drained;
  std::atomic<bool> has_inbox{false};
  std::atomic<bool> sleeping{false};
  unsigned tick = 0;
  std::atomic<uint64_t> local_count{0}, cross_count{0}, external_count{0}, sleeps{0};
};

struct Registry {
  std::vector<std::unique_ptr<CoreQueue>> cores;
  bool pin = true;
  unsigned first_cpu = 0;
  uint64_t poll_ns = 0;
  std::atomic<size_t> next{0};
};

Registry& registry() {
  static Registry r;
  return r;
}

thread_local caf::execution_unit* tls_unit = nullptr;

uint64_t monotonic_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// The core an actor lives on: the execution unit it last ran on (CAF sets it
// on every resume; pin_to_core sets it before the first). -1 if unknown.
int home_of(caf::resumable* job) {
  if (job->subtype() != caf::resumable::scheduled_actor) return -1;
  caf::execution_unit* unit = static_cast<caf::scheduled_actor*>(job)->context();
  if (!unit) return -1;
  auto& cores = registry().cores;
  for (size_t i = 0; i < cores.size(); ++i)
    if (cores[i]->unit == unit) return static_cast<int>(i);
  return -1;
}

void post_remote(size_t core, caf::resumable* job) {
  CoreQueue& q = *registry().cores[core];
  {
    std::lock_guard lock(q.mu);
    q.inbox.push_back(job);
    q.has_inbox.store(true, std::memory_order_seq_cst);
  }
  if (q.sleeping.load(std::memory_order_seq_cst)) q.io->ring().wake();
}

void pin_thread(size_t worker) {
  Registry& r = registry();
  if (!r.pin) return;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  int count = CPU_COUNT(&allowed);
  if (count <= 0) return;
  // The (first_cpu + worker)-th CPU this process may run on.
  int want = static_cast<int>((r.first_cpu + worker) % static_cast<size_t>(count));
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ != want) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0)
      spdlog::warn("reactor {}: cannot pin to CPU {}", worker, cpu);
    return;
  }
}

class ReactorPolicy : public caf::policy::unprofiled {
 public:
  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {}
  };
  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {}
    bool started = false;
  };

  template <class Coordinator>
  void central_enqueue(Coordinator*, caf::resumable* job) {
    auto& r = registry();
    int home = home_of(job);
    size_t core = home >= 0 ? static_cast<size_t>(home) : r.next++ % r.cores.size();
    r.cores[core]->external_count.fetch_add(1, std::memory_order_relaxed);
    post_remote(core, job);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    post_remote(self->id(), job);
  }

  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    CoreQueue& q = *registry().cores[self->id()];
    int home = home_of(job);
    if (home < 0 || static_cast<size_t>(home) == self->id()) {
      q.local_count.fetch_add(1, std::memory_order_relaxed);
      q.local.push_back(job);
      return;
    }
    q.cross_count.fetch_add(1, std::memory_order_relaxed);
    post_remote(static_cast<size_t>(home), job);
  }

  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    registry().cores[self->id()]->local.push_back(job);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    CoreQueue& q = *registry().cores[self->id()];
    if (!self->data().started) {
      self->data().started = true;
      pin_thread(self->id());
      tls_unit = self;
      CoreIo::set_current(q.io);
    }
    UringEngine& ring = q.io->ring();
    unsigned idle = 0;
    uint64_t idle_since = 0;
    CompletionQueue& completions = q.io->completions();
    for (;;) {
      // Between events, no facility is on the stack: completions deferred
      // inside a submit run now (io/protocol.hpp).
      if (!completions.empty()) {
        completions.run();
        idle = 0;
      }
      if (!q.local.empty()) {
        // Under load the queue never empties: keep the ring moving anyway.
        if ((++q.tick & 31) == 0) ring.poll();
        caf::resumable* job = q.local.front();
        q.local.pop_front();
        return job;
      }
      if (q.has_inbox.load(std::memory_order_acquire)) {
        {
          std::lock_guard lock(q.mu);
          q.drained.swap(q.inbox);
          q.has_inbox.store(false, std::memory_order_relaxed);
        }
        for (caf::resumable* job : q.drained) q.local.push_back(job);
        q.drained.clear();
        continue;
      }
      if (ring.poll() > 0) {  // completions ran; they may have queued jobs
        idle = 0;
        continue;
      }
      if (!completions.empty()) continue;  // never sleep on queued completions
      if (++idle < kSpinRounds) continue;
      if (uint64_t poll_ns = registry().poll_ns) {
        uint64_t now = monotonic_ns();
        if (idle == kSpinRounds) idle_since = now;
        if (now - idle_since < poll_ns) {
          // Polling, but never in the way of another thread that could run
          // on this CPU (a process sharing it, the peer node on a small
          // machine): it runs first.
          if ((idle & (kYieldRounds - 1)) == 0) sched_yield();
          continue;
        }
      }
      q.sleeping.store(true, std::memory_order_seq_cst);
      if (!q.has_inbox.load(std::memory_order_seq_cst)) {
        q.sleeps.fetch_add(1, std::memory_order_relaxed);
        ring.wait();
      }
      q.sleeping.store(false, std::memory_order_relaxed);
      idle = 0;
    }
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker* self, UnaryFunction f) {
    CoreQueue& q = *registry().cores[self->id()];
    for (caf::resumable* job : q.local) f(job);
    q.local.clear();
    std::lock_guard lock(q.mu);
    for (caf::resumable* job : q.inbox) f(job);
    q.inbox.clear();
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator*, UnaryFunction) {}

 private:
  // Empty polls before sleeping: a short spin keeps latency low without
  // taking a shared CPU from the host processes on it.
  static constexpr unsigned kSpinRounds = 64;
  // Polls between yields of the CPU while polling for --poll-us (a few
  // microseconds: on a 2-CPU VM running two nodes and fio, 512 rounds
  // took a mirrored write-back job from 31k to 13k writes/s).
  static constexpr unsigned kYieldRounds = 64;
};

using ReactorCoordinator = caf::scheduler::coordinator<ReactorPolicy>;

}  // namespace

void install_reactor_scheduler(caf::actor_system_config& cfg, std::vector<CoreIo*> cores,
                               bool pin, unsigned first_cpu, unsigned poll_us) {
  Registry& r = registry();
  r.cores.clear();
  for (CoreIo* io : cores) {
    auto q = std::make_unique<CoreQueue>();
    q->io = io;
    r.cores.push_back(std::move(q));
  }
  r.pin = pin;
  r.first_cpu = first_cpu;
  r.poll_ns = uint64_t{poll_us} * 1000;
  cfg.set("scheduler.max-threads", cores.size());
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new ReactorCoordinator(sys);
  });
}

void bind_reactor_workers(caf::actor_system& sys) {
  auto& coordinator = static_cast<ReactorCoordinator&>(sys.scheduler());
  auto& cores = registry().cores;
  for (size_t i = 0; i < cores.size(); ++i) cores[i]->unit = coordinator.worker_by_id(i);
}

void pin_to_core(const caf::actor& actor, unsigned core) {
  auto* ptr = caf::actor_cast<caf::abstract_actor*>(actor);
  static_cast<caf::scheduled_actor*>(ptr)->context(registry().cores.at(core)->unit);
}

caf::execution_unit* current_reactor_unit() { return tls_unit; }

std::vector<CoreSchedulerStats> reactor_scheduler_stats() {
  std::vector<CoreSchedulerStats> out;
  for (auto& q : registry().cores)
    out.push_back({q->local_count.load(), q->cross_count.load(), q->external_count.load(),
                   q->sleeps.load()});
  return out;
}

}  // namespace sve

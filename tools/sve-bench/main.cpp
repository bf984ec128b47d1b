// sve-bench: drives the facility stack in-process, without sockets, on
// null, memory or file mdisks, at a chosen queue depth, block size,
// read/write mix and core count; prints IOPS, MB/s and latency percentiles.
// The stack is the one sved runs (build_core_stack), on the same per-core
// reactor scheduler.
#include <unistd.h>

#include <cstdio>
#include <future>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "node/core_stack.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "hw/device/block_device.hpp"
#include "hw/device/mdisk_label.hpp"
#include "tools/sve-bench/bench_client.hpp"
#include "util/size.hpp"
#include "model/virt_map.hpp"
#include "virt/virtualizer.hpp"

using namespace sve;

namespace {

const char* kUsage =
    "usage: sve-bench [--mdisk null:SIZE|memory:SIZE|PATH] [--cores N] [--qd N]\n"
    "                 [--bs SIZE] [--rw randread|randwrite|randrw|read|write]\n"
    "                 [--mix READ_PERCENT] [--time SECONDS] [--io-memory SIZE]\n"
    "                 [--no-pin] [--json]\n"
    "  defaults: null:4G, 1 core, qd 32 per core, 4K, randread, 10 s\n"
    "  a file mdisk is used raw (no label) and overwritten by write jobs\n";

struct Options {
  std::string mdisk = "null:4G";
  unsigned cores = 1;
  BenchJob job;
  std::string rw = "randread";
  double seconds = 10;
  uint64_t io_memory = 64ull << 20;
  bool pin = true;
  bool json = false;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    auto size = [&](const std::string& v) {
      auto s = parse_size(v);
      if (!s || *s == 0) throw std::invalid_argument(a + ": not a size: " + v);
      return *s;
    };
    if (a == "--mdisk") o.mdisk = next();
    else if (a == "--cores") o.cores = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--qd") o.job.queue_depth = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--bs") o.job.block_bytes = static_cast<uint32_t>(size(next()));
    else if (a == "--rw") o.rw = next();
    else if (a == "--mix") o.job.read_percent = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--time") o.seconds = std::stod(next());
    else if (a == "--io-memory") o.io_memory = size(next());
    else if (a == "--no-pin") o.pin = false;
    else if (a == "--json") o.json = true;
    else if (a == "-h" || a == "--help") return false;
    else throw std::invalid_argument("unknown argument " + a);
  }
  if (o.rw == "randread") o.job.read_percent = 100;
  else if (o.rw == "randwrite") o.job.read_percent = 0;
  else if (o.rw == "read") o.job.read_percent = 100, o.job.random = false;
  else if (o.rw == "write") o.job.read_percent = 0, o.job.random = false;
  else if (o.rw != "randrw") throw std::invalid_argument("unknown --rw " + o.rw);
  if (o.cores == 0 || o.job.queue_depth == 0) throw std::invalid_argument("cores and qd must be > 0");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) {
      std::cout << kUsage;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "sve-bench: " << e.what() << "\n" << kUsage;
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);

  auto device = BlockDevice::open(o.mdisk);
  if (!device) {
    std::cerr << "sve-bench: " << device.error().message << "\n";
    return 1;
  }
  // One vdisk over the whole device, in 16 MiB extents, past the label area.
  uint64_t extent = 16ull << 20;
  uint64_t usable = device.value()->size_bytes() > kMdiskReservedBytes
                        ? (device.value()->size_bytes() - kMdiskReservedBytes) / extent * extent
                        : 0;
  if (usable == 0) {
    std::cerr << "sve-bench: the mdisk is too small (16 MiB beyond 1 MiB reserved at least)\n";
    return 1;
  }
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = 1;
  v.name = "bench";
  v.size_bytes = usable;
  v.extent_bytes = extent;
  for (uint64_t off = 0; off < usable; off += extent)
    v.extents.push_back({1, kMdiskReservedBytes + off});
  v.mdisks = {1};
  map->volumes[1] = v;
  o.job.volume = 1;
  o.job.volume_bytes = usable;

  std::vector<std::unique_ptr<CoreIo>> cores;
  std::vector<CoreIo*> io;
  CoreIoConfig cfg_io;
  cfg_io.buffer_bytes = o.io_memory;
  cfg_io.requests = std::max<uint32_t>(4096, o.job.queue_depth * 2 + 1024);
  for (unsigned i = 0; i < o.cores; ++i) {
    auto c = CoreIo::create(i, cfg_io, {{kVirtFacility, kVirtRequestReserve}});
    if (!c) {
      std::cerr << "sve-bench: " << c.error().message << "\n";
      return 1;
    }
    io.push_back(c.value().get());
    cores.push_back(std::move(c.value()));
  }
  std::vector<BenchResult> results(o.cores);
  {
    caf::actor_system_config cfg;
    install_reactor_scheduler(cfg, io, o.pin);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    bind_reactor_workers(sys);
    std::vector<CoreStack> stacks;
    for (unsigned i = 0; i < o.cores; ++i) {
      // Every core drives the same volume: per-core cache partitions would
      // each hold their own copy of it, so the cache stays off here.
      stacks.push_back(build_core_stack(sys, *io[i], CoreCacheSetup{}, nullptr));
      caf::anon_send(stacks[i].backend, attach_atom::value, uint32_t{1},
                     BlockDevicePtr(device.value()));
      caf::anon_send(stacks[i].virt, view_atom::value, FacilityView{map, nullptr});
    }
    // The clients start once the device and the map are in place: requests
    // reach the facilities by direct calls, not behind these messages.
    for (auto& s : stacks) {
      for (const caf::actor& actor : {s.backend, s.virt}) {
        std::promise<void> applied;
        run_on_core(actor, [&] { applied.set_value(); });
        applied.get_future().wait();
      }
    }
    std::vector<std::unique_ptr<BenchClient>> clients(o.cores);
    std::vector<std::promise<void>> started(o.cores), drained(o.cores);
    for (unsigned i = 0; i < o.cores; ++i) {
      run_on_core(stacks[i].backend, [&, i] {
        clients[i] = std::make_unique<BenchClient>(*io[i], *stacks[i].top, o.job, i);
        clients[i]->start();
        started[i].set_value();
      });
    }
    for (auto& s : started) s.get_future().wait();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    for (unsigned i = 0; i < o.cores; ++i)
      run_on_core(stacks[i].backend, [&, i] { clients[i]->stop([&, i] { drained[i].set_value(); }); });
    for (auto& d : drained) d.get_future().wait();
    for (unsigned i = 0; i < o.cores; ++i) {
      std::promise<void> gone;
      run_on_core(stacks[i].backend, [&, i] {
        results[i] = clients[i]->result();
        clients[i].reset();  // its buffers go back on their own core
        gone.set_value();
      });
      gone.get_future().wait();
    }
    for (auto& s : stacks) {
      for (const auto& [kind, actor] : s.actors())
        caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    }
    // The facilities outlive their actors: an actor that never got a
    // message starts on the exit message, with its facility.
    sys.await_all_actors_done();
    stacks.clear();
  }

  BenchResult total;
  double seconds = 0;
  for (auto& r : results) {
    total.reads += r.reads;
    total.writes += r.writes;
    total.errors += r.errors;
    total.latency.merge(r.latency);
    seconds = std::max(seconds, r.seconds);
  }
  uint64_t ops = total.reads + total.writes;
  double iops = ops / seconds;
  double mbps = iops * o.job.block_bytes / 1e6;
  auto us = [&](double f) { return total.latency.percentile(f) / 1000.0; };
  if (o.json) {
    nlohmann::json j = {{"mdisk", o.mdisk}, {"cores", o.cores}, {"qd", o.job.queue_depth},
                        {"bs", o.job.block_bytes}, {"rw", o.rw},
                        {"read_percent", o.job.read_percent}, {"seconds", seconds},
                        {"ops", ops}, {"errors", total.errors}, {"iops", iops},
                        {"iops_per_core", iops / o.cores}, {"mb_per_s", mbps},
                        {"p50_us", us(0.5)}, {"p99_us", us(0.99)}, {"p999_us", us(0.999)}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s %s bs=%u qd=%u cores=%u: %.0f IOPS (%.0f per core), %.1f MB/s, "
                "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, %lu errors\n",
                o.mdisk.c_str(), o.rw.c_str(), o.job.block_bytes, o.job.queue_depth, o.cores,
                iops, iops / o.cores, mbps, us(0.5), us(0.99), us(0.999),
                static_cast<unsigned long>(total.errors));
  }
  return total.errors ? 1 : 0;
}

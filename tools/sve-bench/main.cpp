// sve-bench: drives the facility stack in-process, without sockets, on
// null, memory or file mdisks, at a chosen queue depth, block size,
// read/write mix and core count; prints IOPS, MB/s and latency percentiles.
// The stack is the one sved runs (build_core_stack), on the same per-core
// reactor scheduler.
//
// --mirror: a mirrored pair instead, the owner's stack and its partner's,
// the owner's cache in write-back with its copies on a data channel over a
// loopback TCP connection to the partner's stack (one core: both on it;
// 2N cores: N each, core c of one node paired with core c of the other,
// each pair with its own vdisk and data channel connection), each core
// with its non-volatile memory in /dev/shm. The figure is mirrored writes
// per second, of all pairs and of each. --both-ways: each node also owns a
// vdisk of its own on each core, mirrored to the other (as the two nodes of
// an I/O group share its vdisks, each the preferred node of half), with a
// connection each way and a load generator on each node.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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
#include "hw/port/tcp.hpp"
#include "tools/sve-bench/bench_client.hpp"
#include "util/size.hpp"
#include "model/thin_geometry.hpp"
#include "model/virt_map.hpp"
#include "virt/virtualizer.hpp"

using namespace sve;

namespace {

const char* kUsage =
    "usage: sve-bench [--mdisk null:SIZE|memory:SIZE|PATH] [--cores N] [--qd N]\n"
    "                 [--bs SIZE] [--rw randread|randwrite|randrw|read|write]\n"
    "                 [--mix READ_PERCENT] [--time SECONDS] [--io-memory SIZE]\n"
    "                 [--no-pin] [--json] [--mirror [--cache SIZE] [--both-ways]]\n"
    "                 [--thin GRAIN] [--prefill] [--stride SIZE] [--poll-us N]\n"
    "  defaults: null:4G, 1 core, qd 32 per core, 4K, randread, 10 s\n"
    "  --mirror: a mirrored write-back pair over a loopback data channel (1 core:\n"
    "  both nodes on it; 2N cores: N each; --cache is each core's, 256M);\n"
    "  --both-ways: each node owns a vdisk a core too, mirrored to the other\n"
    "  a file mdisk is used raw (no label) and overwritten by write jobs\n"
    "  --poll-us: how long an idle core polls before it sleeps (sved's option,\n"
    "  default 0 as there)\n"
    "  --thin: the vdisk is thin with this grain (its map at the start of the\n"
    "  device); --prefill writes the whole vdisk once first (untimed); --stride:\n"
    "  sequential requests this far apart (--stride 256K --bs 4K on a thin\n"
    "  vdisk: every write allocates a grain)\n";

struct Options {
  std::string mdisk = "null:4G";
  unsigned cores = 1;
  BenchJob job;
  std::string rw = "randread";
  double seconds = 10;
  uint64_t io_memory = 64ull << 20;
  bool pin = true;
  bool json = false;
  bool mirror = false;
  bool both_ways = false;  // each node owns half the pair's vdisks
  uint64_t cache = 256ull << 20;
  uint32_t thin_grain = 0;
  bool prefill = false;
  unsigned poll_us = 0;  // as sved's default
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
    else if (a == "--mirror") o.mirror = true;
    else if (a == "--both-ways") o.both_ways = true;
    else if (a == "--cache") o.cache = size(next());
    else if (a == "--thin") o.thin_grain = static_cast<uint32_t>(size(next()));
    else if (a == "--prefill") o.prefill = true;
    else if (a == "--poll-us") o.poll_us = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--stride") o.job.stride = size(next());
    else if (a == "-h" || a == "--help") return false;
    else throw std::invalid_argument("unknown argument " + a);
  }
  if (o.rw == "randread") o.job.read_percent = 100;
  else if (o.rw == "randwrite") o.job.read_percent = 0;
  else if (o.rw == "read") o.job.read_percent = 100, o.job.random = false;
  else if (o.rw == "write") o.job.read_percent = 0, o.job.random = false;
  else if (o.rw != "randrw") throw std::invalid_argument("unknown --rw " + o.rw);
  if (o.cores == 0 || o.job.queue_depth == 0) throw std::invalid_argument("cores and qd must be > 0");
  if (o.both_ways && !o.mirror) throw std::invalid_argument("--both-ways: with --mirror");
  if (o.mirror && o.cores > 1 && o.cores % 2)
    throw std::invalid_argument("--mirror: 1 core (both nodes on it) or an even number (half each)");
  if (o.thin_grain && (o.thin_grain < kMinGrainBytes || o.thin_grain > kMaxGrainBytes ||
                       (o.thin_grain & (o.thin_grain - 1))))
    throw std::invalid_argument("--thin: a grain of 32K, 64K, 128K or 256K");
  if (o.thin_grain && o.cores != 1)
    throw std::invalid_argument("--thin: one core (a thin vdisk's map is one core's)");
  return true;
}

// The partner's copies of a mirrored pair go on the data channel; this is
// the fallback the cache would take without it, counted (it should not be).
struct NoMirrorLink final : MirrorLink {
  uint64_t used = 0;
  void mirror(uint32_t, const MirrorBatch&, uint64_t) override { ++used; }
  void release(uint32_t, uint32_t, const std::vector<uint64_t>&,
               const std::vector<uint64_t>&) override {}
};

// Node `self`'s route table for the pair's vdisks: those of node 1 owned by
// it, written back and mirrored to node 2; those of node 2 the other way.
std::shared_ptr<RouteTable> mirror_routes(uint32_t self,
                                          const std::vector<std::vector<uint32_t>>& owned) {
  auto routes = std::make_shared<RouteTable>();
  routes->self = self;
  routes->generation = 1;
  VdiskRoute r;
  r.owner = 1;
  r.partner = 2;
  r.mode = CacheMode::write_back;
  r.group = 1;
  r.epoch = r.wb_epoch = 10;
  r.why = "sve-bench --mirror";
  for (uint32_t node : {1u, 2u}) {
    r.owner = node;
    r.partner = 3 - node;
    for (uint32_t vdisk : owned[node - 1]) routes->vdisks[vdisk] = r;
  }
  return routes;
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
  if (o.thin_grain) {
    // Thin: the device is its real capacity; the virtual size is what the
    // grains after the map hold.
    v.grain_bytes = o.thin_grain;
    uint64_t meta = ThinGeometry{usable, o.thin_grain}.meta_bytes();
    v.size_bytes = (usable - meta) / o.thin_grain * o.thin_grain;
  }
  // A mirrored pair with N cores a node has N vdisks of node 1's, vdisk N +
  // c on core c of both nodes (a vdisk is served by core id % cores), and
  // --both-ways N of node 2's, vdisk 2N + c; they share the device's
  // extents. Otherwise every core drives vdisk 1.
  unsigned per_node = o.mirror && o.cores > 1 ? o.cores / 2 : 1;
  std::vector<std::vector<uint32_t>> owned(2);  // each node's vdisks, by core
  for (unsigned node = 0; node < (o.both_ways ? 2u : 1u); ++node) {
    for (unsigned c = 0; c < (o.mirror ? per_node : 1); ++c) {
      v.id = o.mirror ? (node + 1) * per_node + c : 1;
      map->volumes[v.id] = v;
      owned[node].push_back(v.id);
    }
  }
  o.job.volume = owned[0][0];
  o.job.volume_bytes = v.size_bytes;

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
  // One load generator a core of the owner (of each node --both-ways).
  const unsigned clients_n = o.mirror ? per_node * (o.both_ways ? 2 : 1) : o.cores;
  std::vector<BenchResult> results(clients_n);
  std::string shm_dir;
  uint64_t fallback_copies = 0;
  ThinStats thin;  // of the timed run
  {
    caf::actor_system_config cfg;
    install_reactor_scheduler(cfg, io, o.pin, 0, o.poll_us);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    bind_reactor_workers(sys);
    std::vector<CoreStack> stacks;
    std::vector<NoMirrorLink*> fallbacks;
    if (o.mirror) {
      // Node 1 (the owner, where the clients run) on the first half of the
      // reactors, node 2 on the second (both on reactor 0 with one core).
      shm_dir = std::filesystem::path("/dev/shm") / ("sve-bench-" + std::to_string(::getpid()));
      std::filesystem::create_directories(shm_dir);
      auto blocks = static_cast<uint32_t>(o.cache / kCacheBlockBytes);
      for (uint32_t node : {1u, 2u}) {
        for (unsigned c = 0; c < per_node; ++c) {
          CoreCacheSetup cache;
          cache.blocks = blocks;
          auto nvram = Nvram::open(shm_dir + "/nvram-" + std::to_string(node) + "-" +
                                       std::to_string(c),
                                   2 * blocks + 64);
          if (!nvram) throw std::runtime_error(nvram.error().message);
          // As a node that has run a while has it: every page in memory
          // (a first store to each would otherwise fault in the timed run).
          if (auto st = nvram.value()->prefault(); !st) throw std::runtime_error(st.error().message);
          cache.nvram = std::move(nvram.value());
          auto fallback = std::make_unique<NoMirrorLink>();
          fallbacks.push_back(fallback.get());
          cache.mirror = std::move(fallback);
          cache.self = node;
          cache.data_channel = true;
          cache.channel.self = node;
          cache.channel.cores = per_node;
          unsigned reactor = o.cores == 1 ? 0 : (node - 1) * per_node + c;
          stacks.push_back(build_core_stack(sys, *io[reactor], std::move(cache), nullptr, nullptr,
                                            per_node, static_cast<int>(c)));
        }
      }
    } else {
      for (unsigned i = 0; i < o.cores; ++i) {
        // Every core drives the same volume: per-core cache partitions would
        // each hold their own copy of it, so the cache stays off here.
        stacks.push_back(build_core_stack(sys, *io[i], CoreCacheSetup{}, nullptr, nullptr, o.cores));
      }
    }
    for (size_t i = 0; i < stacks.size(); ++i) {
      CoreStack& st = stacks[i];
      caf::anon_send(st.backend, attach_atom::value, uint32_t{1}, BlockDevicePtr(device.value()));
      caf::anon_send(st.virt, view_atom::value, FacilityView{map, nullptr});
      caf::anon_send(st.thin, view_atom::value, FacilityView{map, nullptr});
      if (o.mirror) {
        FacilityView view{map, mirror_routes(i < per_node ? 1 : 2, owned)};
        caf::anon_send(st.cache_actor, view_atom::value, view);
        caf::anon_send(st.forward_actor, view_atom::value, view);
      }
    }
    // Each owner's connection to its partner: a loopback TCP connection, as
    // two nodes' data channel would be (node 1's; node 2's too --both-ways).
    for (unsigned from = 1; o.mirror && from <= (o.both_ways ? 2u : 1u); ++from) {
      for (unsigned c = 0; c < per_node; ++c) {
        auto pair = loopback_tcp_pair();
        if (!pair) throw std::runtime_error(pair.error().message);
        auto& [out, in] = pair.value();
        int out_fd = out.release(), in_fd = in.release();
        // Sealed as between two nodes (keys of this run's own).
        channel::SessionKeys keys;
        random_bytes(keys.send.data(), keys.send.size());
        random_bytes(keys.receive.data(), keys.receive.size());
        CoreStack* owner = &stacks[(from - 1) * per_node + c];
        CoreStack* partner = &stacks[(2 - from) * per_node + c];
        run_on_core(owner->cache_actor, [owner, out_fd, keys, to = 3 - from] {
          owner->channels->adopt(to, UniqueFd(out_fd), keys);
        });
        run_on_core(partner->cache_actor, [partner, in_fd, keys, from] {
          channel::FrameHeader hello;
          hello.origin = from;
          hello.core = partner->channels->setup().core;
          hello.count = partner->channels->setup().cores;
          partner->channels->accept(UniqueFd(in_fd), hello, {keys.receive, keys.send});
        });
      }
    }
    // The clients start once the device, the map and the routes are in
    // place: requests reach the facilities by direct calls, not behind
    // these messages.
    for (auto& s : stacks) {
      for (const caf::actor& actor : {s.backend, s.virt, s.cache_actor, s.forward_actor}) {
        std::promise<void> applied;
        run_on_core(actor, [&] { applied.set_value(); });
        applied.get_future().wait();
      }
    }
    if (o.prefill) {
      // The whole vdisk written once, untimed, in 256 KiB writes: a thin
      // vdisk's grains are all allocated, and a memory mdisk's pages are
      // all there (the timed run then measures neither).
      BenchJob fill = o.job;
      fill.random = false;
      fill.read_percent = 0;
      fill.block_bytes = 256 * 1024;
      fill.stride = 0;
      fill.queue_depth = 8;
      fill.count = fill.volume_bytes / fill.block_bytes;
      std::unique_ptr<BenchClient> filler;
      std::promise<void> filled;
      run_on_core(stacks[0].backend, [&] {
        filler = std::make_unique<BenchClient>(*io[0], *stacks[0].top, fill, 0);
        filler->run_count([&] { filled.set_value(); });
      });
      filled.get_future().wait();
      std::promise<void> gone;
      run_on_core(stacks[0].backend, [&] {
        if (filler->result().errors) std::fprintf(stderr, "sve-bench: the prefill failed\n");
        filler.reset();
        gone.set_value();
      });
      gone.get_future().wait();
    }
    ThinStats thin_before;
    if (o.thin_grain) {
      std::promise<ThinStats> got;
      run_on_core(stacks[0].thin, [&] { got.set_value(stacks[0].thin_facility->stats()); });
      thin_before = got.get_future().get();
    }
    std::vector<std::unique_ptr<BenchClient>> clients(clients_n);
    std::vector<std::promise<void>> started(clients_n), drained(clients_n);
    for (unsigned i = 0; i < clients_n; ++i) {
      run_on_core(stacks[i].backend, [&, i] {
        BenchJob job = o.job;
        // (Stack i is node 1's core i, or node 2's core i - N; with one
        // core both nodes are on reactor 0.)
        if (o.mirror) job.volume = owned[i / per_node][i % per_node];
        CoreIo& core = *io[o.cores == 1 ? 0 : i];
        clients[i] = std::make_unique<BenchClient>(core, *stacks[i].top, job, i);
        clients[i]->start();
        started[i].set_value();
      });
    }
    for (auto& s : started) s.get_future().wait();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    for (unsigned i = 0; i < clients_n; ++i)
      run_on_core(stacks[i].backend, [&, i] { clients[i]->stop([&, i] { drained[i].set_value(); }); });
    for (auto& d : drained) d.get_future().wait();
    for (unsigned i = 0; i < clients_n; ++i) {
      std::promise<void> gone;
      run_on_core(stacks[i].backend, [&, i] {
        results[i] = clients[i]->result();
        clients[i].reset();  // its buffers go back on their own core
        gone.set_value();
      });
      gone.get_future().wait();
    }
    if (o.mirror) {
      for (NoMirrorLink* f : fallbacks) fallback_copies += f->used;
      // The pair's connection closes while the reactors still run.
      for (auto& st : stacks) {
        std::promise<void> closed;
        run_on_core(st.cache_actor, [&] {
          st.channels->close_all();
          closed.set_value();
        });
        closed.get_future().wait();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (o.thin_grain) {
      std::promise<ThinStats> got;
      run_on_core(stacks[0].thin, [&] { got.set_value(stacks[0].thin_facility->stats()); });
      ThinStats after = got.get_future().get();
      thin.allocations = after.allocations - thin_before.allocations;
      thin.meta_writes = after.meta_writes - thin_before.meta_writes;
      thin.flushes = after.flushes - thin_before.flushes;
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

  if (!shm_dir.empty()) std::filesystem::remove_all(shm_dir);
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
    nlohmann::json j = {{"mdisk", o.mdisk}, {"cores", o.cores}, {"mirror", o.mirror},
                        {"pairs", o.mirror ? per_node : 0},
                        {"qd", o.job.queue_depth},
                        {"bs", o.job.block_bytes}, {"rw", o.rw},
                        {"read_percent", o.job.read_percent}, {"seconds", seconds},
                        {"ops", ops}, {"errors", total.errors}, {"iops", iops},
                        {"iops_per_core", iops / o.cores}, {"mb_per_s", mbps},
                        {"p50_us", us(0.5)}, {"p99_us", us(0.99)}, {"p999_us", us(0.999)}};
    if (o.thin_grain)
      j["thin"] = {{"grain", o.thin_grain}, {"allocations", thin.allocations},
                   {"map_page_writes", thin.meta_writes}, {"flushes", thin.flushes}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s%s %s bs=%u qd=%u cores=%u: %.0f IOPS (%.0f per core), %.1f MB/s, "
                "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, %lu errors\n",
                o.mirror ? "mirrored pair, " : "", o.mdisk.c_str(), o.rw.c_str(),
                o.job.block_bytes, o.job.queue_depth, o.cores,
                iops, iops / o.cores, mbps, us(0.5), us(0.99), us(0.999),
                static_cast<unsigned long>(total.errors));
  }
  if (o.thin_grain && !o.json)
    std::printf("thin, grain %u: %lu grains allocated, %lu map page writes, %lu flushes "
                "(%.2f page writes per grain)\n",
                o.thin_grain, static_cast<unsigned long>(thin.allocations),
                static_cast<unsigned long>(thin.meta_writes),
                static_cast<unsigned long>(thin.flushes),
                thin.allocations ? double(thin.meta_writes) / double(thin.allocations) : 0.0);
  if (fallback_copies) std::fprintf(stderr, "sve-bench: %lu copies missed the data channel\n",
                                    static_cast<unsigned long>(fallback_copies));
  return total.errors || fallback_copies ? 1 : 0;
}

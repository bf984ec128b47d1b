// Thin provisioning: the map's on-disk pages and their recovery, and the
// thin facility over a simulated disk that loses what was not made durable
// when the power is cut (each 512-byte sector keeps its durable content or
// one of the versions written since, torn at sector boundaries), seeded.
#include <catch2/catch.hpp>

#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "model/ownership.hpp"
#include "thin/thin_facility.hpp"
#include "thin/thin_map.hpp"
#include "util/size.hpp"

using namespace sve;

namespace {

constexpr uint32_t kVdisk = 7;
constexpr uint64_t kSector = 512;

// A disk that completes requests when the test says, in any order, and
// forgets unsynced writes at a power cut.
struct FakeDisk final : IoServer {
  explicit FakeDisk(uint64_t bytes) : current(bytes, 0), durable(bytes, 0) {}
  std::vector<char> current, durable;
  // Sector -> versions written since it was durable, each with its number.
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> pending;
  uint64_t versions = 0;
  // A flush makes durable what was written before it was submitted; what
  // completes while it waits may or may not be.
  std::map<const IoRequest*, uint64_t> flush_marks;
  std::deque<IoRequestPtr> queue;
  uint64_t reads = 0, writes = 0, flushes = 0;
  int fail_writes = 0;  // an I/O error for the next N writes

  void submit(IoRequestPtr r) override {
    if (r->op == IoOp::flush) flush_marks[r.get()] = versions;
    queue.push_back(std::move(r));
  }

  void put(uint64_t offset, const char* data, uint64_t length, bool fua) {
    std::memcpy(current.data() + offset, data, length);
    for (uint64_t s = offset / kSector; s < (offset + length + kSector - 1) / kSector; ++s) {
      std::string version(current.data() + s * kSector, kSector);
      if (fua) {
        pending.erase(s);
        std::memcpy(durable.data() + s * kSector, version.data(), kSector);
      } else {
        pending[s].emplace_back(++versions, std::move(version));
      }
    }
  }

  void execute(IoRequestPtr r) {
    REQUIRE(r->volume == kVdisk);
    REQUIRE(r->offset + r->length <= current.size());
    bool fua = r->flags & io_flags::fua;
    int status = 0;
    switch (r->op) {
      case IoOp::read:
        ++reads;
        r->buffer->copy_in(r->buffer_offset, r->length, current.data() + r->offset);
        break;
      case IoOp::write: {
        ++writes;
        if (fail_writes > 0) {
          --fail_writes;
          status = EIO;
          break;
        }
        std::vector<char> data(r->length);
        r->buffer->copy_out(r->buffer_offset, r->length, data.data());
        put(r->offset, data.data(), r->length, fua);
        break;
      }
      case IoOp::write_zeroes: {
        std::vector<char> zeros(r->length, 0);
        put(r->offset, zeros.data(), r->length, fua);
        break;
      }
      case IoOp::trim:  // a hint: leaves the data
        break;
      case IoOp::compare_and_write:  // (the atomic facility's, above the cache)
      case IoOp::or_write:
        status = EINVAL;
        break;
      case IoOp::flush: {
        ++flushes;
        uint64_t mark = flush_marks[r.get()];
        flush_marks.erase(r.get());
        for (auto it = pending.begin(); it != pending.end();) {
          auto& v = it->second;
          auto upto = std::find_if(v.begin(), v.end(), [&](const auto& x) { return x.first > mark; });
          if (upto != v.begin())
            std::memcpy(durable.data() + it->first * kSector, std::prev(upto)->second.data(), kSector);
          v.erase(v.begin(), upto);
          it = v.empty() ? pending.erase(it) : std::next(it);
        }
        break;
      }
      case IoOp::block_status:
        FAIL("block status reached the disk");
        break;
    }
    complete(std::move(r), status);
  }
  // Completes one request (a random one with `rng`), or returns false.
  template <class Rng>
  bool step(Rng* rng) {
    if (queue.empty()) return false;
    size_t i = rng ? (*rng)() % queue.size() : 0;
    IoRequestPtr r = std::move(queue[i]);
    queue.erase(queue.begin() + static_cast<long>(i));
    execute(std::move(r));
    return true;
  }
  void drain() {
    while (step<std::mt19937_64>(nullptr)) {}
  }
  // The power is gone: what is still queued fails (and the facility's own
  // records of it go, for the leak checker).
  void fail_all() {
    while (!queue.empty()) {
      IoRequestPtr r = std::move(queue.front());
      queue.pop_front();
      complete(std::move(r), EIO);
    }
  }
  // What the disk holds after the power is cut now: each sector written
  // since it was durable holds one of its versions, or the durable one.
  std::vector<char> power_cut(std::mt19937_64& rng) {
    std::vector<char> image = durable;
    for (auto& [s, kept] : pending) {
      size_t pick = rng() % (kept.size() + 1);
      if (pick) std::memcpy(image.data() + s * kSector, kept[pick - 1].second.data(), kSector);
    }
    return image;
  }
};

struct Host final : IoClient {
  void io_done(IoRequestPtr r) override { done.push_back(std::move(r)); }
  std::vector<IoRequestPtr> done;
};

std::shared_ptr<VirtMap> thin_map(uint64_t virtual_bytes, uint32_t grain, uint32_t extents,
                                  bool autoexpand = false) {
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = kVdisk;
  v.name = "thin";
  v.size_bytes = virtual_bytes;
  v.extent_bytes = MiB;
  v.extents.resize(extents);
  v.grain_bytes = grain;
  v.autoexpand = autoexpand;
  v.warning_pct = 80;
  map->volumes[kVdisk] = v;
  return map;
}

struct Rig {
  FakeDisk disk;
  ThinFacility thin{disk};
  Host host;
  explicit Rig(uint64_t real_bytes, std::shared_ptr<VirtMap> map) : disk(real_bytes) {
    thin.set_view({map, nullptr});
    disk.drain();  // the map is loaded
  }
  IoRequestPtr start(IoOp op, uint64_t offset, uint64_t length, char fill = 0,
                     uint32_t flags = 0) {
    auto r = make_request();
    r->op = op;
    r->volume = kVdisk;
    r->offset = offset;
    r->length = length;
    r->flags = flags;
    r->client = &host;
    if (op == IoOp::read || op == IoOp::write) {
      r->buffer = Buffer::allocate(length);
      std::memset(r->buffer->data(), fill, length);
    }
    thin.submit(r);
    return r;
  }
  // Runs a request to its end, completing I/O in order.
  IoRequestPtr run(IoOp op, uint64_t offset, uint64_t length, char fill = 0,
                   uint32_t flags = 0) {
    size_t before = host.done.size();
    auto r = start(op, offset, length, fill, flags);
    while (host.done.size() == before) REQUIRE(disk.step<std::mt19937_64>(nullptr));
    disk.drain();
    return r;
  }
  std::string read(uint64_t offset, uint64_t length) {
    auto r = run(IoOp::read, offset, length, 'X');
    REQUIRE(r->status == 0);
    return std::string(r->buffer->data(), length);
  }
};

}  // namespace

TEST_CASE("a thin map page survives a round trip and a torn copy", "[thin]") {
  ThinGeometry geo{64 * MiB, 32 * 1024};
  ThinMap map(kVdisk, geo, 4 * MiB);
  auto p = map.allocate();
  REQUIRE(p);
  map.set(5, *p);
  std::vector<char> slot0(kThinPageBytes, 0), slot1(kThinPageBytes, 0);
  auto w = map.prepare_write(0, slot0.data());
  CHECK(w.slot == 0);  // a fresh page goes to slot 0 first
  map.written(w);
  map.set(6, *map.allocate());
  auto w2 = map.prepare_write(0, slot1.data());
  CHECK(w2.slot == 1);
  CHECK(w2.seq == w.seq + 1);

  SECTION("the newer copy wins") {
    ThinMap loaded(kVdisk, geo, 4 * MiB);
    loaded.load_page(0, slot0.data(), slot1.data());
    auto found = loaded.finish_load();
    CHECK(found.clean());
    CHECK(found.mapped == 2);
    CHECK(loaded.lookup(5) == p);
    CHECK(loaded.free_grains() == loaded.data_grains() - 2);
  }
  SECTION("a torn newer copy leaves the older one") {
    slot1[100] ^= 1;
    ThinMap loaded(kVdisk, geo, 4 * MiB);
    loaded.load_page(0, slot0.data(), slot1.data());
    auto found = loaded.finish_load();
    CHECK(found.torn_slots == 1);
    CHECK(found.mapped == 1);
    CHECK(loaded.lookup(5) == p);
    CHECK(!loaded.lookup(6));
  }
  SECTION("another vdisk's page, or another page's, is not taken") {
    ThinMap other(kVdisk + 1, geo, 4 * MiB);
    other.load_page(0, slot0.data(), slot1.data());
    CHECK(other.finish_load().mapped == 0);
    ThinMap shifted(kVdisk, geo, 4 * MiB);
    shifted.load_page(1, slot0.data(), slot1.data());
    CHECK(shifted.finish_load().mapped == 0);
  }
  SECTION("a grain named twice, or past the real capacity, is found and dropped") {
    ThinMap twice(kVdisk, geo, 4 * MiB);
    std::vector<uint32_t> entries(kThinEntriesPerPage, 0);
    entries[1] = 3;
    entries[2] = 3;
    entries[3] = 100000;
    encode_page(slot0.data(), kVdisk, 0, 1, entries.data(), kThinEntriesPerPage);
    twice.load_page(0, slot0.data(), std::vector<char>(kThinPageBytes, 0).data());
    auto found = twice.finish_load();
    CHECK(found.mapped_twice == 1);
    CHECK(found.out_of_range == 1);
    CHECK(!found.clean());
    CHECK(found.mapped == 1);
  }
}

TEST_CASE("a node takes a thin vdisk's writes only while it executes it or hands it over",
          "[thin]") {
  auto map = thin_map(64 * MiB, 32 * 1024, 4);
  Rig rig(4 * MiB, map);
  auto routes = [](uint32_t owner, uint32_t handover_by) {
    auto t = std::make_shared<RouteTable>();
    t->self = 1;
    t->generation = 1;
    VdiskRoute r;
    r.owner = owner;
    r.handover_from = handover_by;
    r.handover_by = handover_by;
    t->vdisks[kVdisk] = r;
    return t;
  };
  rig.thin.set_view({nullptr, routes(1, 0)});
  rig.disk.drain();
  CHECK(rig.run(IoOp::write, 0, 4096, 'a')->status == 0);
  // Moved to node 2, which waits while this node destages for the handover.
  rig.thin.set_view({nullptr, routes(2, 1)});
  rig.disk.drain();
  CHECK(rig.run(IoOp::write, 0, 4096, 'b')->status == 0);
  CHECK(rig.read(0, 4096) == std::string(4096, 'b'));
  // Handed over: node 2 executes it now.
  rig.thin.set_view({nullptr, routes(2, 0)});
  rig.disk.drain();
  CHECK(rig.run(IoOp::write, 0, 4096, 'c')->status == ESTALE);
  CHECK(!rig.thin.figures(kVdisk));  // its map is not kept
}

TEST_CASE("the map's check finds leaked and lost grains", "[thin]") {
  ThinMap map(kVdisk, ThinGeometry{64 * MiB, 32 * 1024}, 4 * MiB);
  uint32_t a = *map.allocate(), b = *map.allocate();
  map.set(1, a);
  CHECK(map.check({b}).clean());  // b: a write under way
  ThinCheck leak = map.check({});
  CHECK(leak.leaked == 1);
  CHECK(!leak.clean());
  map.release(a);  // still named by entry 1
  ThinCheck lost = map.check({b});
  CHECK(lost.lost == 1);
  map.set(2, b);  // b named twice
  map.set(3, b);
  CHECK(map.check({}).mapped_twice == 1);
}

TEST_CASE("a thin vdisk reads zeros without I/O and allocates on first write", "[thin]") {
  Rig rig(4 * MiB, thin_map(64 * MiB, 32 * 1024, 4));
  uint64_t reads_after_load = rig.disk.reads;
  CHECK(rig.read(10 * MiB, 64 * 1024) == std::string(64 * 1024, 0));
  CHECK(rig.disk.reads == reads_after_load);  // nothing read below
  CHECK(rig.thin.stats().zero_reads == 2);

  // A 4 KiB write in the middle of a grain: the rest of the grain reads 0.
  rig.disk.current.assign(rig.disk.current.size(), 'G');  // garbage where grains will go
  ThinGeometry geo{64 * MiB, 32 * 1024};
  std::fill(rig.disk.current.begin(), rig.disk.current.begin() + geo.meta_bytes(), 0);
  REQUIRE(rig.run(IoOp::write, 1 * MiB + 8192, 4096, 'a')->status == 0);
  CHECK(rig.thin.stats().allocations == 1);
  CHECK(rig.thin.stats().meta_writes == 1);
  std::string grain = rig.read(1 * MiB, 32 * 1024);
  CHECK(grain.substr(0, 8192) == std::string(8192, 0));
  CHECK(grain.substr(8192, 4096) == std::string(4096, 'a'));
  CHECK(grain.substr(12288) == std::string(32 * 1024 - 12288, 0));
  // Written again: in place, no allocation.
  REQUIRE(rig.run(IoOp::write, 1 * MiB, 4096, 'b')->status == 0);
  CHECK(rig.thin.stats().allocations == 1);
  CHECK(rig.thin.allocated(kVdisk, 1 * MiB, 32 * 1024));
  CHECK(!rig.thin.allocated(kVdisk, 1 * MiB, 64 * 1024));
  auto f = rig.thin.figures(kVdisk);
  REQUIRE(f);
  CHECK(f->used_bytes == 32 * 1024);

  // A trim of the whole grain gives it back; a trim of part leaves it.
  REQUIRE(rig.run(IoOp::trim, 1 * MiB, 4096)->status == 0);
  CHECK(rig.thin.figures(kVdisk)->used_bytes == 32 * 1024);
  REQUIRE(rig.run(IoOp::trim, 1 * MiB, 32 * 1024)->status == 0);
  CHECK(rig.thin.figures(kVdisk)->used_bytes == 0);
  CHECK(rig.thin.stats().frees == 1);
  CHECK(rig.read(1 * MiB, 32 * 1024) == std::string(32 * 1024, 0));
  CHECK(rig.thin.figures(kVdisk)->free_bytes == f->free_bytes + 32 * 1024);
}

TEST_CASE("block status of a thin vdisk: holes where no grain is allocated", "[thin]") {
  Rig rig(4 * MiB, thin_map(64 * MiB, 32 * 1024, 4));
  REQUIRE(rig.run(IoOp::write, 64 * 1024, 4096, 'a')->status == 0);   // grain 2
  REQUIRE(rig.run(IoOp::write, 96 * 1024, 4096, 'b')->status == 0);   // grain 3
  REQUIRE(rig.run(IoOp::write, 320 * 1024, 4096, 'c')->status == 0);  // grain 10
  auto ask = [&](uint64_t offset, uint64_t length, uint32_t max) {
    size_t before = rig.host.done.size();
    auto r = make_request();
    r->op = IoOp::block_status;
    r->volume = kVdisk;
    r->offset = offset;
    r->length = length;
    r->buffer = Buffer::allocate(4096);
    r->client = &rig.host;
    block_status_request(*r, max);
    rig.thin.submit(r);
    rig.disk.drain();
    REQUIRE(rig.host.done.size() == before + 1);
    REQUIRE(r->status == 0);
    CHECK(rig.disk.queue.empty());
    return get_block_status(*r);
  };
  const uint32_t H = status_flags::hole | status_flags::zero;
  auto e = ask(0, 1 * MiB, 100);
  REQUIRE(e.size() == 5);
  CHECK((e[0].length == 64 * 1024 && e[0].flags == H));
  CHECK((e[1].length == 64 * 1024 && e[1].flags == 0));
  CHECK((e[2].length == 192 * 1024 && e[2].flags == H));
  CHECK((e[3].length == 32 * 1024 && e[3].flags == 0));
  CHECK((e[4].length == 672 * 1024 && e[4].flags == H));
  CHECK(ask(0, 1 * MiB, 3).size() == 3);
  // Only the runs asked for; the total stays within the range.
  auto one = ask(70 * 1024, 1 * MiB, 1);
  REQUIRE(one.size() == 1);
  CHECK((one[0].length == 58 * 1024 && one[0].flags == 0));
  auto tail = ask(340 * 1024, 20 * 1024, 100);
  REQUIRE(tail.size() == 2);
  CHECK((tail[0].length == 12 * 1024 && tail[0].flags == 0));
  CHECK((tail[1].length == 8 * 1024 && tail[1].flags == H));
}

TEST_CASE("a thin read marks its holes for the front end (NBD's OFFSET_HOLE)", "[thin]") {
  Rig rig(4 * MiB, thin_map(64 * MiB, 32 * 1024, 4));
  REQUIRE(rig.run(IoOp::write, 64 * 1024, 4096, 'a')->status == 0);   // grain 2
  REQUIRE(rig.run(IoOp::write, 96 * 1024, 4096, 'b')->status == 0);   // grain 3
  REQUIRE(rig.run(IoOp::write, 320 * 1024, 4096, 'c')->status == 0);  // grain 10
  auto runs = [&](uint64_t offset, uint64_t length) {
    auto r = rig.run(IoOp::read, offset, length, 'X');
    REQUIRE(r->status == 0);
    std::vector<std::tuple<uint64_t, uint64_t, bool>> out;
    for (const ReadRun& run : read_runs(*r)) {
      out.emplace_back(run.from, run.length, run.hole);
      // A hole's bytes are zeros in the buffer too; data is what was written.
      std::string bytes(r->buffer->data() + run.from, run.length);
      if (run.hole) CHECK(bytes == std::string(run.length, 0));
      else CHECK(bytes.find_first_not_of(std::string("abc\0", 4)) == std::string::npos);
    }
    return out;
  };
  using R = std::vector<std::tuple<uint64_t, uint64_t, bool>>;
  const uint64_t K = 1024;
  // 32 grains: one unit each.
  CHECK(runs(0, MiB) == R{{0, 64 * K, true}, {64 * K, 64 * K, false}, {128 * K, 192 * K, true},
                          {320 * K, 32 * K, false}, {352 * K, 672 * K, true}});
  // Not aligned to a grain: the runs start and end with the request.
  CHECK(runs(60 * K, 300 * K) == R{{0, 4 * K, true}, {4 * K, 64 * K, false},
                                   {68 * K, 192 * K, true}, {260 * K, 32 * K, false},
                                   {292 * K, 8 * K, true}});
  // 128 grains: units of two grains, a unit with any data is data.
  CHECK(runs(0, 4 * MiB) == R{{0, 64 * K, true}, {64 * K, 64 * K, false},
                              {128 * K, 192 * K, true}, {320 * K, 64 * K, false},
                              {384 * K, 4 * MiB - 384 * K, true}});
  // All data (one grain, the fast path) and all hole.
  CHECK(runs(64 * K, 4 * K) == R{{0, 4 * K, false}});
  CHECK(runs(8 * MiB, 8 * K) == R{{0, 8 * K, true}});
}

TEST_CASE("a full thin vdisk answers ENOSPC and goes on with allocated grains", "[thin]") {
  // 1 MiB real: 32 KiB of map, 31 grains of 32 KiB.
  Rig rig(1 * MiB, thin_map(64 * MiB, 32 * 1024, 1));
  uint32_t grains = static_cast<uint32_t>(rig.thin.figures(kVdisk)->free_bytes / (32 * 1024));
  REQUIRE(grains == 31);
  for (uint32_t g = 0; g < grains; ++g)
    REQUIRE(rig.run(IoOp::write, g * 32768ull, 4096, static_cast<char>('a' + g % 20))->status == 0);
  auto full = rig.run(IoOp::write, 40 * MiB, 4096, 'z');
  CHECK(full->status == ENOSPC);
  CHECK(rig.thin.stats().no_space == 1);
  // A write across an allocated and an unallocated grain fails whole.
  CHECK(rig.run(IoOp::write, 30 * 32768ull, 65536, 'y')->status == ENOSPC);
  // Allocated grains still take writes and read back.
  REQUIRE(rig.run(IoOp::write, 3 * 32768ull, 4096, 'Q')->status == 0);
  CHECK(rig.read(3 * 32768ull, 4096) == std::string(4096, 'Q'));
  CHECK(rig.read(4 * 32768ull, 4096) == std::string(4096, 'e'));
  // Space given back by a trim is used again.
  REQUIRE(rig.run(IoOp::trim, 5 * 32768ull, 32768)->status == 0);
  CHECK(rig.run(IoOp::write, 40 * MiB, 4096, 'z')->status == 0);
  CHECK(rig.read(40 * MiB, 4096) == std::string(4096, 'z'));
}

TEST_CASE("a thin vdisk with autoexpand waits for more extents, or fails when refused", "[thin]") {
  auto map = thin_map(64 * MiB, 32 * 1024, 1, true);
  Rig rig(2 * MiB, map);
  for (uint32_t g = 0; g < 31; ++g) REQUIRE(rig.run(IoOp::write, g * 32768ull, 512, 'a')->status == 0);
  auto want = rig.thin.growth_requests();
  REQUIRE(want.size() == 1);  // it asked ahead, before it was full
  CHECK(want[0].vdisk == kVdisk);
  CHECK(rig.thin.growth_requests().empty());  // once
  size_t before = rig.host.done.size();
  rig.start(IoOp::write, 40 * MiB, 4096, 'w');
  rig.disk.drain();
  CHECK(rig.host.done.size() == before);  // waiting for space

  SECTION("the vdisk grows: the write goes on") {
    auto grown = thin_map(64 * MiB, 32 * 1024, 2, true);
    rig.thin.set_view({grown, nullptr});
    rig.disk.drain();
    REQUIRE(rig.host.done.size() == before + 1);
    CHECK(rig.host.done.back()->status == 0);
    CHECK(rig.read(40 * MiB, 4096) == std::string(4096, 'w'));
  }
  SECTION("the pool has nothing: ENOSPC, until the model changes") {
    rig.thin.growth_refused(kVdisk, true);
    rig.disk.drain();
    REQUIRE(rig.host.done.size() == before + 1);
    CHECK(rig.host.done.back()->status == ENOSPC);
    CHECK(rig.run(IoOp::write, 41 * MiB, 4096, 'w')->status == ENOSPC);
    CHECK(rig.thin.figures(kVdisk)->out_of_space);
    rig.thin.set_view({map, nullptr});  // any change: it may try again
    rig.start(IoOp::write, 41 * MiB, 4096, 'w');
    CHECK(rig.thin.growth_requests().size() == 1);
  }
}

TEST_CASE("concurrent first writes to one grain allocate it once", "[thin]") {
  Rig rig(4 * MiB, thin_map(64 * MiB, 32 * 1024, 4));
  std::mt19937_64 rng(1);
  for (int i = 0; i < 8; ++i) rig.start(IoOp::write, 2 * MiB + i * 4096ull, 4096, static_cast<char>('a' + i));
  while (rig.disk.step(&rng)) {}
  REQUIRE(rig.host.done.size() == 8);
  for (auto& r : rig.host.done) CHECK(r->status == 0);
  CHECK(rig.thin.stats().allocations == 1);
  std::string grain = rig.read(2 * MiB, 32768);
  for (int i = 0; i < 8; ++i) CHECK(grain.substr(i * 4096, 4096) == std::string(4096, 'a' + i));
}

TEST_CASE("a failed first write leaves its grain free and the map clean", "[thin]") {
  Rig rig(4 * MiB, thin_map(64 * MiB, 32 * 1024, 4));
  uint64_t free_before = rig.thin.figures(kVdisk)->free_bytes;
  rig.disk.fail_writes = 1;
  CHECK(rig.run(IoOp::write, 0, 4096, 'a')->status == EIO);
  CHECK(rig.thin.figures(kVdisk)->free_bytes == free_before);
  CHECK(rig.read(0, 4096) == std::string(4096, 0));
  REQUIRE(rig.thin.start_check(kVdisk) == 0);
  rig.disk.drain();
  auto f = rig.thin.figures(kVdisk);
  CHECK(f->last_check.clean());
  CHECK(f->last_check.mapped == 0);
}

// The invariant: after a power cut at any moment, every acknowledged write
// reads back (a sector may hold a later, unacknowledged version), a grain
// never reads as another grain's data, and the map has no grain twice.
TEST_CASE("thin vdisks lose no acknowledged write at a power cut (seeded)", "[thin]") {
  const uint64_t G = 32 * 1024;
  const uint64_t virtual_bytes = 16 * MiB;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    auto map = thin_map(virtual_bytes, G, 2);
    Rig rig(2 * MiB, map);
    // Per 512-byte sector of the vdisk: what an acknowledged write put
    // there (0 = zeros) and the versions still in flight.
    // A write with FUA must be there after the cut; one without may be
    // lost (as on any disk without a flush), leaving what was there before.
    // Writes in flight together may land in either order: one acknowledged
    // while a later-acknowledged FUA write was in flight stays possible.
    const uint64_t sectors = virtual_bytes / kSector;
    struct Version {
      uint32_t tag = 0;
      uint64_t acked_at = 0;
    };
    std::vector<Version> acked(sectors);  // the last durable one
    std::map<uint64_t, std::vector<Version>> maybe;  // acknowledged since, without FUA
    uint64_t clock = 0;
    std::map<uint64_t, std::vector<uint32_t>> in_flight;  // sector -> tags
    struct Op {
      IoRequestPtr r;
      uint32_t tag;
      uint64_t started_at;
    };
    std::vector<Op> ops;
    uint32_t next_tag = 1;
    auto fill = [&](Buffer& b, uint64_t offset, uint64_t length, uint32_t tag) {
      for (uint64_t s = 0; s < length / kSector; ++s) {
        char* p = b.data() + s * kSector;
        std::memset(p, 0, kSector);
        uint64_t sector = offset / kSector + s;
        std::memcpy(p, &tag, 4);
        std::memcpy(p + 4, &sector, 8);
      }
    };
    int steps = 50 + static_cast<int>(rng() % 400);
    for (int step = 0; step < steps; ++step) {
      // Start a few requests, complete a few I/Os, at random.
      if (rng() % 3 == 0 && ops.size() < 16) {
        // A write of 1 to 16 sectors somewhere in the first 48 grains
        // (more than the 2 MiB real capacity holds: some fail ENOSPC).
        uint64_t len = (1 + rng() % 16) * kSector;
        uint64_t off = (rng() % (48 * G / kSector)) * kSector;
        if (off + len > virtual_bytes) continue;
        bool trim = rng() % 8 == 0;
        uint32_t tag = next_tag++;
        auto r = make_request();
        r->volume = kVdisk;
        r->client = &rig.host;
        if (trim) {
          r->op = IoOp::trim;
          r->offset = off / G * G;
          r->length = G;
          tag = 0;
        } else {
          r->op = IoOp::write;
          if (rng() % 2) r->flags = io_flags::fua;
          r->offset = off;
          r->length = len;
          r->buffer = Buffer::allocate(len);
          fill(*r->buffer, off, len, tag);
        }
        for (uint64_t s = r->offset / kSector; s < (r->offset + r->length) / kSector; ++s)
          in_flight[s].push_back(tag);
        ops.push_back({r, tag, ++clock});
        rig.thin.submit(r);
      }
      rig.disk.step(&rng);
      // Completed: acknowledged writes become what must be there.
      for (auto& done : rig.host.done) {
        auto it = std::find_if(ops.begin(), ops.end(), [&](const Op& o) { return o.r == done; });
        REQUIRE(it != ops.end());

        for (uint64_t s = done->offset / kSector; s < (done->offset + done->length) / kSector; ++s) {
          auto& v = in_flight[s];
          v.erase(std::find(v.begin(), v.end(), it->tag));
          if (done->status != 0) continue;
          Version now{it->tag, ++clock};
          if (done->op == IoOp::write && !(done->flags & io_flags::fua)) {
            maybe[s].push_back(now);
            continue;
          }
          // Durable now; what was acknowledged while it was in flight may
          // still have landed after it.
          auto& m = maybe[s];
          m.push_back(acked[s]);
          m.erase(std::remove_if(m.begin(), m.end(),
                                 [&](const Version& v) { return v.acked_at < it->started_at; }),
                  m.end());
          acked[s] = now;
        }
        if (done->status) REQUIRE((done->status == ENOSPC && done->op == IoOp::write));
        ops.erase(it);
      }
      rig.host.done.clear();
    }
    // The power goes. A new facility reads what the disk kept.
    std::vector<char> image = rig.disk.power_cut(rng);
    rig.disk.fail_all();
    FakeDisk after(image.size());
    after.current = after.durable = image;
    ThinFacility thin(after);
    thin.set_view({map, nullptr});
    after.drain();
    auto f = thin.figures(kVdisk);
    REQUIRE(f);
    REQUIRE(f->loaded);
    CHECK(f->last_check.clean());
    Host host;
    auto r = make_request();
    r->op = IoOp::read;
    r->volume = kVdisk;
    r->offset = 0;
    r->length = 48 * G;
    r->buffer = Buffer::allocate(r->length);
    r->client = &host;
    thin.submit(r);
    after.drain();
    REQUIRE(host.done.size() == 1);
    REQUIRE(host.done[0]->status == 0);
    for (uint64_t s = 0; s < 48 * G / kSector; ++s) {
      const char* p = r->buffer->data() + s * kSector;
      uint32_t tag;
      uint64_t sector;
      std::memcpy(&tag, p, 4);
      std::memcpy(&sector, p + 4, 8);
      CAPTURE(s, tag, acked[s].tag);
      if (tag != 0) REQUIRE(sector == s);  // never another place's data
      if (tag == acked[s].tag) continue;
      // Otherwise only a version still in flight at the cut (or zeros for
      // an acknowledged trim, or a trim in flight).
      auto& v = in_flight[s];
      auto& m = maybe[s];
      bool ok = std::find(v.begin(), v.end(), tag) != v.end() ||
                std::any_of(m.begin(), m.end(), [&](const Version& x) { return x.tag == tag; });
      if (tag == 0 && !v.empty() && std::find(v.begin(), v.end(), 0u) != v.end()) ok = true;
      REQUIRE(ok);
    }
  }
}

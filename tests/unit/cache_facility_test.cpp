// The cache facility between a dummy front end and a back end that holds
// its requests until the test completes them, in any order: a read miss or
// a write racing another write must never leave the cache holding data the
// back end does not.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "cache/cache_facility.hpp"

using namespace sve;

namespace {

constexpr uint64_t kVdiskBytes = 256 * 1024;
constexpr uint32_t kVdisk = 7;

// A back end in memory whose requests wait until complete() applies them:
// a write lands, and a read sees the memory, at completion time.
struct HeldBackEnd final : IoServer {
  std::vector<uint8_t> memory = std::vector<uint8_t>(kVdiskBytes, 0);
  std::vector<IoRequestPtr> pending;
  uint64_t submitted = 0;
  int fail_next = 0;  // errno for the next completion

  void submit(IoRequestPtr r) override {
    ++submitted;
    pending.push_back(std::move(r));
  }
  void complete_at(size_t i) {
    IoRequestPtr r = pending[i];
    pending.erase(pending.begin() + static_cast<long>(i));
    int status = fail_next;
    fail_next = 0;
    // As the layers below do: a range outside the vdisk is refused.
    if (status == 0 && r->op != IoOp::flush &&
        (r->volume != kVdisk || r->offset + r->length > memory.size()))
      status = ERANGE;
    if (status == 0) {
      if (r->op == IoOp::write)
        r->buffer->copy_out(r->buffer_offset, r->length, memory.data() + r->offset);
      else if (r->op == IoOp::read)
        r->buffer->copy_in(r->buffer_offset, r->length, memory.data() + r->offset);
      else if (r->op == IoOp::write_zeroes || r->op == IoOp::trim)
        std::memset(memory.data() + r->offset, 0, r->length);
    }
    complete(std::move(r), status);
  }
  // Completes a read as if the device had read it earlier: with `fill`.
  void complete_read_with(size_t i, uint8_t fill) {
    IoRequestPtr r = pending[i];
    pending.erase(pending.begin() + static_cast<long>(i));
    std::memset(r->buffer->data(), fill, r->length);
    complete(std::move(r), 0);
  }
  void complete_all() {
    while (!pending.empty()) complete_at(0);
  }
};

struct FrontEnd final : IoClient {
  std::vector<IoRequestPtr> done;
  void io_done(IoRequestPtr r) override { done.push_back(std::move(r)); }
};

std::shared_ptr<VirtMap> map_with(uint32_t id) {
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = id;
  v.name = "v";
  v.size_bytes = kVdiskBytes;
  map->volumes[id] = v;
  return map;
}

struct Rig {
  HeldBackEnd back;
  FrontEnd front;
  CacheFacility cache;
  explicit Rig(uint32_t blocks = 16) : cache(back, blocks) {  // of 4 KiB
    cache.set_map(map_with(kVdisk));
    auto routes = std::make_shared<RouteTable>();  // a standalone node's
    VdiskRoute r;
    r.mode = CacheMode::write_through;
    routes->vdisks[kVdisk] = r;
    cache.set_routes(routes);
  }

  IoRequestPtr submit(IoOp op, uint64_t offset, uint64_t length, uint8_t fill = 0) {
    auto r = make_request();
    r->op = op;
    r->volume = kVdisk;
    r->offset = offset;
    r->length = length;
    r->buffer = Buffer::allocate(length ? length : 1);
    if (op == IoOp::write) std::memset(r->buffer->data(), fill, length);
    r->client = &front;
    r->cookie = 0xc0ffee;
    cache.submit(r);
    return r;
  }
  // Reads [offset, offset + length) to the end, completing the back end's
  // part at once; returns the bytes.
  std::vector<uint8_t> read_now(uint64_t offset, uint64_t length) {
    auto r = submit(IoOp::read, offset, length);
    back.complete_all();
    REQUIRE(r->status == 0);
    REQUIRE(r->cookie == 0xc0ffee);  // the front end's own, restored
    auto* p = reinterpret_cast<uint8_t*>(r->buffer->data());
    return {p, p + length};
  }
  std::vector<uint8_t> backend_bytes(uint64_t offset, uint64_t length) {
    return {back.memory.begin() + static_cast<long>(offset),
            back.memory.begin() + static_cast<long>(offset + length)};
  }
};

}  // namespace

TEST_CASE("a read that missed is kept and the next one is served from cache", "[cache]") {
  Rig rig;
  std::memset(rig.back.memory.data() + 8192, 0x42, 8192);
  auto first = rig.read_now(8192, 8192);
  CHECK(rig.back.submitted == 1);
  auto second = rig.read_now(8192, 8192);
  CHECK(rig.back.submitted == 1);  // a hit: the back end saw nothing
  CHECK(first == second);
  CHECK(second[0] == 0x42);
  // A part of a cached block is a hit too.
  CHECK(rig.read_now(8192 + 100, 300) == rig.backend_bytes(8192 + 100, 300));
  CHECK(rig.back.submitted == 1);
  const CacheVdiskStats* s = rig.cache.vdisk_stats(kVdisk);
  REQUIRE(s);
  CHECK(s->reads == 3);
  CHECK(s->read_hits == 2);
}

TEST_CASE("write-through: a write completes only once the back end has it", "[cache]") {
  Rig rig;
  auto w = rig.submit(IoOp::write, 4096, 4096, 0x11);
  CHECK(rig.front.done.empty());
  rig.back.complete_all();
  REQUIRE(rig.front.done.size() == 1);
  CHECK(rig.back.memory[4096] == 0x11);
  // Its whole block was kept: the read is a hit, with the written bytes.
  uint64_t before = rig.back.submitted;
  CHECK(rig.read_now(4096, 4096) == std::vector<uint8_t>(4096, 0x11));
  CHECK(rig.back.submitted == before);
  // A partial write forgets the cached block; the next read goes below.
  rig.submit(IoOp::write, 4096 + 10, 10, 0x22);
  rig.back.complete_all();
  CHECK(rig.read_now(4096, 4096) == rig.backend_bytes(4096, 4096));
  CHECK(rig.back.submitted == before + 2);
}

TEST_CASE("streaming requests of 256 KiB or more pass without filling the cache", "[cache]") {
  Rig rig(128);  // room for the whole vdisk
  std::memset(rig.back.memory.data(), 0x5a, kVdiskBytes);
  // A streaming read misses and keeps nothing: its last block is read again.
  CHECK(rig.read_now(0, 256 * 1024) == rig.backend_bytes(0, 256 * 1024));
  uint64_t before = rig.back.submitted;
  CHECK(rig.read_now(252 * 1024, 4096) == rig.backend_bytes(252 * 1024, 4096));
  CHECK(rig.back.submitted == before + 1);
  // Just under the limit, a read is kept.
  rig.read_now(0, 252 * 1024);
  before = rig.back.submitted;
  CHECK(rig.read_now(248 * 1024, 4096) == rig.backend_bytes(248 * 1024, 4096));
  CHECK(rig.back.submitted == before);
  // A streaming write forgets the cached blocks it covers and keeps nothing.
  rig.submit(IoOp::write, 0, 256 * 1024, 0x33);
  rig.back.complete_all();
  before = rig.back.submitted;
  CHECK(rig.read_now(4096, 4096) == std::vector<uint8_t>(4096, 0x33));
  CHECK(rig.back.submitted == before + 1);
}

TEST_CASE("a read miss overtaken by a write keeps nothing", "[cache]") {
  Rig rig;
  std::memset(rig.back.memory.data(), 0x01, 4096);
  auto r = rig.submit(IoOp::read, 0, 4096);  // in flight
  auto w = rig.submit(IoOp::write, 0, 4096, 0x02);
  rig.back.complete_at(1);               // the write lands
  rig.back.complete_read_with(0, 0x01);  // the read had seen the old data
  CHECK(r->buffer->data()[0] == 0x01);
  CHECK(rig.read_now(0, 4096) == std::vector<uint8_t>(4096, 0x02));
}

TEST_CASE("a read miss issued while a write is in flight keeps nothing", "[cache]") {
  Rig rig;
  auto w = rig.submit(IoOp::write, 0, 8192, 0x05);
  auto r = rig.submit(IoOp::read, 4096, 4096);
  rig.back.complete_at(1);  // the read completes first, with the old zeroes
  rig.back.complete_at(0);  // then the write lands
  CHECK(rig.read_now(4096, 4096) == std::vector<uint8_t>(4096, 0x05));
}

TEST_CASE("overlapping writes completing out of order leave nothing cached", "[cache]") {
  Rig rig;
  rig.submit(IoOp::write, 0, 4096, 0xaa);
  rig.submit(IoOp::write, 0, 4096, 0xbb);
  rig.back.complete_at(1);  // 0xbb lands first
  rig.back.complete_at(0);  // then 0xaa: the back end holds 0xaa
  CHECK(rig.read_now(0, 4096) == std::vector<uint8_t>(4096, 0xaa));
}

TEST_CASE("a failed write forgets the blocks and a deleted vdisk's blocks go", "[cache]") {
  Rig rig;
  rig.read_now(0, 8192);
  rig.submit(IoOp::write, 0, 8192, 0x33);
  rig.back.fail_next = EIO;
  rig.back.complete_all();
  REQUIRE(rig.front.done.back()->status == EIO);
  uint64_t before = rig.back.submitted;
  rig.read_now(0, 8192);
  CHECK(rig.back.submitted == before + 1);  // not a hit
  CHECK(rig.cache.counts().clean == 2);
  rig.cache.set_map(map_with(kVdisk + 1));  // kVdisk deleted
  CHECK(rig.cache.counts().clean == 0);
}

TEST_CASE("requests the layers below refuse pass through untouched", "[cache]") {
  Rig rig;
  rig.submit(IoOp::read, kVdiskBytes - 4096, 8192);  // beyond the end
  auto other = make_request();
  other->op = IoOp::read;
  other->volume = 99;  // no such vdisk
  other->length = 4096;
  other->buffer = Buffer::allocate(4096);
  other->client = &rig.front;
  rig.cache.submit(other);
  rig.submit(IoOp::flush, 0, 0);
  CHECK(rig.back.pending.size() == 3);
  rig.back.complete_all();
  CHECK(rig.cache.counts().clean == 0);
  CHECK(rig.cache.in_flight() == 0);
}

// Random reads, writes, zeroes and trims of random sizes, completed in random
// order: whenever nothing is in flight, every read returns exactly what the
// back end holds.
TEST_CASE("the cache never serves data the back end does not hold", "[cache]") {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    Rig rig;
    for (int step = 0; step < 300; ++step) {
      auto pick = rng() % 10;
      if (pick < 6) {
        uint64_t offset = (rng() % (kVdiskBytes / 512)) * 512;
        uint64_t length = std::min<uint64_t>(kVdiskBytes - offset, 512 * (1 + rng() % 40));
        IoOp op = pick < 3 ? IoOp::read
                  : pick < 5 ? IoOp::write
                             : (rng() % 2 ? IoOp::write_zeroes : IoOp::trim);
        rig.submit(op, offset, length, static_cast<uint8_t>(rng()));
      } else if (!rig.back.pending.empty()) {
        if (rng() % 8 == 0) rig.back.fail_next = EIO;
        rig.back.complete_at(rng() % rig.back.pending.size());
      }
      if (rig.back.pending.empty()) {
        uint64_t offset = (rng() % (kVdiskBytes / 4096 - 4)) * 4096;
        REQUIRE(rig.read_now(offset, 16384) == rig.backend_bytes(offset, 16384));
      }
    }
    rig.back.complete_all();
    for (uint64_t offset = 0; offset < kVdiskBytes; offset += 65536)
      REQUIRE(rig.read_now(offset, 65536) == rig.backend_bytes(offset, 65536));
    REQUIRE(rig.cache.in_flight() == 0);
  }
}

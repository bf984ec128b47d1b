#pragma once
// What the point-in-time copy facility's unit tests share: a memory disk
// whose requests complete when a test steps it, a host, and one facility
// driven by hand (tests/unit/flashcopy_test.cpp: the seeded model;
// flashcopy_cases_test.cpp: cases by hand).
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "flashcopy/flashcopy_facility.hpp"
#include "model/fc_bitmap_geometry.hpp"
#include "model/ownership.hpp"
#include "model/virt_map.hpp"

namespace sve::fc_test {

// Small, so that requests often span grains and mappings copy to the end.
constexpr uint64_t kVdiskBytes = 256 * 1024;
constexpr uint32_t kGrain = 16 * 1024;

// Every vdisk in memory; requests complete when step() picks them.
struct MemDisk final : IoServer {
  std::map<uint32_t, std::vector<char>> data;
  std::vector<IoRequestPtr> queue;
  uint64_t fail_every = 0, done = 0;  // fail one in this many (0: none)
  void submit(IoRequestPtr r) override { queue.push_back(std::move(r)); }
  bool step(std::mt19937_64& rng) {
    if (queue.empty()) return false;
    size_t i = rng() % queue.size();
    IoRequestPtr r = std::move(queue[i]);
    queue.erase(queue.begin() + static_cast<long>(i));
    auto& bytes = data[r->volume];
    bytes.resize(kVdiskBytes, 0);
    int status = 0;
    if (r->offset + r->length > kVdiskBytes) {
      status = ERANGE;
    } else if (r->op == IoOp::read) {
      r->buffer->copy_in(r->buffer_offset, r->length, bytes.data() + r->offset);
    } else if (r->op == IoOp::write) {
      r->buffer->copy_out(r->buffer_offset, r->length, bytes.data() + r->offset);
    } else if (r->op == IoOp::trim || r->op == IoOp::write_zeroes) {
      std::memset(bytes.data() + r->offset, 0, r->length);
    }
    complete(std::move(r), status);
    return true;
  }
};

struct Host final : IoClient {
  std::vector<IoRequestPtr> done;
  void io_done(IoRequestPtr r) override { done.push_back(std::move(r)); }
};

// One facility over a memory disk, driven by hand: each request runs to
// its end at once, and the mappings go through their states as a test
// says.
struct OneFacility {
  MemDisk disk;
  std::optional<FlashCopyFacility> owned{std::in_place, disk};
  FlashCopyFacility& fc = *owned;  // (the same storage after restart())
  Host host;
  std::mt19937_64 rng;
  std::map<uint32_t, CopyLayout> layouts;
  std::shared_ptr<const RouteTable> routes;  // null: a standalone node's
  uint64_t now = 0;

  explicit OneFacility(uint64_t seed) : rng(seed) {}

  CopyLayout& map(uint32_t id, uint32_t source, uint32_t target, bool incremental) {
    CopyLayout& c = layouts[id];
    c.id = id;
    c.source = source;
    c.target = target;
    c.size_bytes = kVdiskBytes;
    c.grain_bytes = kGrain;
    c.copy_rate = 150;
    c.incremental = incremental;
    return c;
  }
  void publish() {
    auto view = std::make_shared<VirtMap>();
    for (auto& [id, c] : layouts) view->copies[id] = c;
    fc.set_view({view, routes});
  }
  void drain() {
    while (disk.step(rng)) {
    }
  }
  IoRequestPtr io(IoOp op, uint32_t v, uint64_t offset, uint64_t length, char fill) {
    auto r = make_request();
    r->op = op;
    r->volume = v;
    r->offset = offset;
    r->length = length;
    r->buffer = Buffer::allocate(length);
    std::memset(r->buffer->data(), fill, length);
    r->client = &host;
    fc.submit(r);
    drain();
    REQUIRE(r->status == 0);
    return r;
  }
  bool has(uint32_t id, CopyEvent::Kind kind) {
    for (auto& e : fc.events([](uint32_t) { return false; }))
      if (e.mapping == id && e.kind == kind) return true;
    return false;
  }
  // starting (drained at once: nothing is in flight), then copying.
  void start(CopyLayout& c) {
    c.state = FcState::starting;
    c.start_seq += 1;
    publish();
    REQUIRE(has(c.id, CopyEvent::Kind::drained));
    c.state = FcState::copying;
    publish();
  }
  // The background copy to its end, then idle.
  void run_to_end(CopyLayout& c) {
    for (int i = 0; i < 1000 && !has(c.id, CopyEvent::Kind::copied); ++i) {
      now += 50;
      fc.tick(now);
      drain();
    }
    REQUIRE(has(c.id, CopyEvent::Kind::copied));
    c.state = FcState::idle_or_copied;
    publish();
  }
  uint64_t copies() const { return fc.stats().grain_copies + fc.stats().background_copies; }
  // Starts `c` and copies it to the end: how many grains that copied.
  uint64_t copy_to_end(CopyLayout& c) {
    const uint64_t before = copies();
    start(c);
    run_to_end(c);
    return copies() - before;
  }
  // Grains 0 and 5 of the source and 9 of the target change.
  void change_three_grains(uint32_t source, uint32_t target) {
    io(IoOp::write, source, 0, 512, 'b');
    io(IoOp::write, source, 5 * kGrain + 100, 512, 'c');
    io(IoOp::write, target, 9 * kGrain, kGrain, 'x');
  }
  bool same(uint32_t a, uint32_t b) {
    auto x = io(IoOp::read, a, 0, kVdiskBytes, 0);
    auto y = io(IoOp::read, b, 0, kVdiskBytes, 0);
    return std::memcmp(x->buffer->data(), y->buffer->data(), kVdiskBytes) == 0;
  }
  // Requests of the disk's queue that `which` picks, taken out of it.
  template <typename Which>
  void hold(std::vector<IoRequestPtr>& held, Which which) {
    for (auto it = disk.queue.begin(); it != disk.queue.end();) {
      if (which(**it)) {
        held.push_back(std::move(*it));
        it = disk.queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  // A page write of the bitmap vdisk still in the device queue of a node
  // that lost the mapping (its lease ran out): where it lands, and what.
  struct LatePage {
    uint32_t bitmap = 0;
    uint64_t offset = 0;
    std::vector<char> bytes;
  };
  // A host write of `v` at `offset` that makes the facility write a page of
  // `bitmap`, taken out of the disk's queue and kept for later; the
  // facility is answered EIO for it (what its failure does next depends).
  LatePage write_leaving_late_page(uint32_t v, uint64_t offset, char fill, uint32_t bitmap,
                                   IoRequestPtr& write) {
    write = make_request();
    write->op = IoOp::write;
    write->volume = v;
    write->offset = offset;
    write->length = 512;
    write->buffer = Buffer::allocate(512);
    std::memset(write->buffer->data(), fill, 512);
    write->client = &host;
    fc.submit(write);
    std::vector<IoRequestPtr> held;
    do hold(held, [&](const IoRequest& r) { return r.op == IoOp::write && r.volume == bitmap; });
    while (disk.step(rng));
    REQUIRE(held.size() == 1);
    LatePage late{bitmap, held[0]->offset, std::vector<char>(held[0]->length)};
    held[0]->buffer->copy_out(held[0]->buffer_offset, late.bytes.size(), late.bytes.data());
    complete(std::move(held[0]), EIO);
    drain();
    return late;
  }
  void land(const LatePage& late) {
    auto& bytes = disk.data[late.bitmap];
    std::memcpy(bytes.data() + late.offset, late.bytes.data(), late.bytes.size());
  }

  // The I/O process restarts (nothing in flight): a new facility, the same view.
  void restart() {
    drain();
    owned.emplace(disk);
    publish();
    drain();
  }
};

}  // namespace sve::fc_test

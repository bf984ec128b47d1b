// The mirrored write-back cache of two nodes of an I/O group, each a cache
// facility with its own non-volatile memory (a file) over one shared back
// end, the copies between them carried by hand: every message can be held,
// delivered or lost, and either node can die at any step of a write. After
// each, the survivor takes over as the cluster would (committed group
// states, model/ownership.hpp) and every acknowledged write must be on the
// back end; a node that returns must not bring back what no longer counts.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <random>

#include "cache/cache_facility.hpp"
#include "model/ownership.hpp"
#include "model/model.hpp"

using namespace sve;

namespace {

constexpr uint64_t kBlocks = 64;
constexpr uint64_t kBytes = kBlocks * 4096;
constexpr uint32_t kVdisk = 7;

// One back end both nodes write, its requests held until completed.
struct SharedBackEnd {
  std::vector<uint8_t> memory = std::vector<uint8_t>(kBytes, 0);
};

struct NodeBackEnd final : IoServer {
  SharedBackEnd* shared = nullptr;
  std::deque<IoRequestPtr> pending;
  void submit(IoRequestPtr r) override { pending.push_back(std::move(r)); }
  void complete_all() {
    while (!pending.empty()) complete_one();
  }
  void complete_one() {
    {
      IoRequestPtr r = std::move(pending.front());
      pending.pop_front();
      if (r->op == IoOp::write)
        r->buffer->copy_out(r->buffer_offset, r->length, shared->memory.data() + r->offset);
      else if (r->op == IoOp::read)
        r->buffer->copy_in(r->buffer_offset, r->length, shared->memory.data() + r->offset);
      else if (r->op == IoOp::write_zeroes || r->op == IoOp::trim)
        std::memset(shared->memory.data() + r->offset, 0, r->length);
      complete(std::move(r), 0);
    }
  }
  // A node that dies: what it had in flight never lands.
  void lose_all() { pending.clear(); }
};

struct Message {
  enum Kind { mirror, release } kind;
  uint32_t to = 0;
  MirrorBatch batch;
  uint64_t id = 0;
};

// The interconnect, by hand: messages wait until delivered or lost.
struct Wire final : MirrorLink {
  uint32_t from = 0;
  std::deque<Message>* queue = nullptr;
  void mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) override {
    queue->push_back({Message::mirror, partner, batch, id});
    queue->back().batch.origin = from;
  }
  void release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
               const std::vector<uint64_t>& seqs) override {
    Message m{Message::release, partner, {}, 0};
    m.batch.origin = from;
    m.batch.vdisk = vdisk;
    m.batch.blocks = blocks;
    m.batch.seqs = seqs;
    queue->push_back(std::move(m));
  }
};

struct FrontEnd final : IoClient {
  std::vector<IoRequestPtr> done;
  void io_done(IoRequestPtr r) override { done.push_back(std::move(r)); }
};

struct Node {
  uint32_t id;
  std::string nvram_path;
  std::unique_ptr<Nvram> nvram;
  NodeBackEnd back;
  Wire wire;
  std::unique_ptr<CacheFacility> cache;
};

std::vector<uint8_t> block_of(uint8_t fill) { return std::vector<uint8_t>(4096, fill); }

struct Pair {
  SharedBackEnd disk;
  std::deque<Message> wire;
  Node nodes[3];  // 1 and 2
  ClusterModel config;
  std::shared_ptr<VirtMap> map = std::make_shared<VirtMap>();
  std::string dir;
  FrontEnd front;
  uint64_t now = 1000;
  uint32_t nvram_slots;

  explicit Pair(uint32_t slots = 2 * 32 + 64) : nvram_slots(slots) {
    char tmpl[] = "/tmp/sve-wb-XXXXXX";
    dir = ::mkdtemp(tmpl);
    VolumeLayout v;
    v.id = kVdisk;
    v.name = "v";
    v.size_bytes = kBytes;
    map->volumes[kVdisk] = v;
    IoGroupConfig g;
    g.id = 3;
    g.name = "g";
    g.nodes = {1, 2};
    g.cache_epoch = g.wb_epoch = 10;
    config.iogrps.push_back(g);
    VdiskConfig vd;
    vd.id = kVdisk;
    vd.name = "v";
    vd.iogrp_id = 3;
    vd.preferred_node = 1;
    config.vdisks.push_back(vd);
    for (uint32_t id : {1u, 2u}) start(id);
    publish({1, 2});
  }
  ~Pair() { std::filesystem::remove_all(dir); }

  IoGroupConfig& group() { return config.iogrps[0]; }

  // Node 1 again, its copies through `link` (which must outlive it).
  Node& owner_with(MirrorLink& link) {
    Node& n = nodes[1];
    n.cache = std::make_unique<CacheFacility>(n.back, 32, n.nvram.get(), &link, 1);
    n.cache->set_map(map);
    publish({1, 2});
    return n;
  }

  // A node's process starts (or restarts) on its non-volatile memory.
  void start(uint32_t id) {
    Node& n = nodes[id];
    n.id = id;
    n.nvram_path = dir + "/nvram-" + std::to_string(id);
    n.cache.reset();
    n.nvram.reset();
    n.nvram = std::move(Nvram::open(n.nvram_path, nvram_slots).value());
    n.back.shared = &disk;
    n.back.pending.clear();
    n.wire.from = id;
    n.wire.queue = &wire;
    n.cache = std::make_unique<CacheFacility>(n.back, 32, n.nvram.get(), &n.wire, id);
    n.cache->set_map(map);
  }
  // SIGKILL: its memory is gone, its non-volatile memory stays; messages
  // to or from it are lost.
  void kill(uint32_t id) {
    Node& n = nodes[id];
    n.back.lose_all();
    n.cache.reset();
    n.nvram.reset();
    std::erase_if(wire, [&](const Message& m) { return m.to == id || m.batch.origin == id; });
  }
  bool alive(uint32_t id) const { return nodes[id].cache != nullptr; }

  // The route tables of a generation with these members, to every live node.
  void publish(std::vector<uint32_t> members) {
    for (uint32_t id : {1u, 2u}) {
      if (!alive(id) || std::find(members.begin(), members.end(), id) == members.end()) continue;
      RoutePolicy p;
      p.self = id;
      p.members = members;
      nodes[id].cache->set_routes(build_routes(config, p));
    }
  }
  // The survivor commits that it runs the group alone (or both again).
  void commit_group(uint32_t solo) {
    IoGroupConfig& g = group();
    if (solo && !g.solo) g.wb_epoch = g.cache_epoch;
    g.cache_epoch += 1;
    if (!solo) g.wb_epoch = g.cache_epoch;
    g.solo = solo;
  }

  IoRequestPtr write(uint32_t at, uint64_t block, uint8_t fill, uint64_t len = 4096,
                     uint64_t skew = 0) {
    auto r = make_request();
    r->op = IoOp::write;
    r->volume = kVdisk;
    r->offset = block * 4096 + skew;
    r->length = len;
    r->buffer = Buffer::allocate(len);
    std::memset(r->buffer->data(), fill, len);
    r->client = &front;
    nodes[at].cache->submit(r);
    return r;
  }
  // A write the host was told about (its copy on the partner), still dirty.
  void acked_write(uint32_t at, uint64_t block, uint8_t fill) {
    size_t before = front.done.size();
    write(at, block, fill);
    deliver_one();
    REQUIRE(front.done.size() == before + 1);
    REQUIRE(front.done.back()->status == 0);
  }
  // Node `id` loses its lease: a table that serves nothing.
  void lose_lease(uint32_t id) {
    RoutePolicy lost;
    lost.self = id;
    lost.members = {1, 2};
    lost.serving = false;
    nodes[id].cache->set_routes(build_routes(config, lost));
  }
  // Any request, as it comes from the host, on node `at`.
  IoRequestPtr submit(uint32_t at, IoOp op, uint64_t offset, uint64_t length) {
    auto r = make_request();
    r->op = op;
    r->volume = kVdisk;
    r->offset = offset;
    r->length = length;
    if (op == IoOp::read || op == IoOp::write) r->buffer = Buffer::allocate(length);
    r->client = &front;
    nodes[at].cache->submit(r);
    return r;
  }
  std::vector<uint8_t> read(uint32_t at, uint64_t block) {
    auto r = make_request();
    r->op = IoOp::read;
    r->volume = kVdisk;
    r->offset = block * 4096;
    r->length = 4096;
    r->buffer = Buffer::allocate(4096);
    r->client = &front;
    nodes[at].cache->submit(r);
    settle();
    REQUIRE(r->status == 0);
    auto* p = reinterpret_cast<uint8_t*>(r->buffer->data());
    return {p, p + 4096};
  }
  std::vector<uint8_t> on_disk(uint64_t block) {
    return {disk.memory.begin() + static_cast<long>(block * 4096),
            disk.memory.begin() + static_cast<long>((block + 1) * 4096)};
  }
  // Delivers the next message; false when none is left.
  bool deliver_one() {
    if (wire.empty()) return false;
    Message m = std::move(wire.front());
    wire.pop_front();
    Node& to = nodes[m.to];
    if (!to.cache) return true;
    if (m.kind == Message::release) {
      to.cache->release_mirror(m.batch.origin, m.batch.vdisk, m.batch.blocks, m.batch.seqs);
      return true;
    }
    int st = to.cache->store_mirror(m.batch);
    if (alive(m.batch.origin)) nodes[m.batch.origin].cache->mirror_done(m.id, st == 0);
    return true;
  }
  // Runs everything to rest: messages, back-end requests, ticks.
  void settle() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      while (deliver_one()) any = true;
      for (uint32_t id : {1u, 2u}) {
        if (!alive(id)) continue;
        if (!nodes[id].back.pending.empty()) any = true;
        nodes[id].back.complete_all();
        nodes[id].cache->tick(now);
        if (!nodes[id].back.pending.empty()) any = true;  // the tick started some
      }
      now += 300;  // past the destage delay
      if (!any && wire.empty()) return;
    }
    FAIL("the pair did not come to rest");
  }
};

}  // namespace

TEST_CASE("write-back: a write completes once the partner holds its copy", "[cache][wb]") {
  Pair p;
  auto w = p.write(1, 3, 0x31);
  REQUIRE(p.wire.size() == 1);  // its copy, on the way
  CHECK(w->use_count() > 1);    // not completed yet
  CHECK(p.front.done.empty());
  p.deliver_one();
  REQUIRE(p.front.done.size() == 1);
  CHECK(w->status == 0);
  CHECK(p.on_disk(3) == block_of(0));  // not destaged yet
  CHECK(p.nodes[2].cache->stats().copies_held == 1);
  CHECK(p.read(1, 3) == block_of(0x31));  // from cache
  p.settle();                             // destage, then the copy's release
  CHECK(p.on_disk(3) == block_of(0x31));
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
  CHECK(p.nodes[1].cache->counts().dirty == 0);
}

// The copies a mirrored write costs (docs/cache.md, "Copies"): on the
// owner, one, from the host's buffer into a non-volatile slot, which is
// the cache block's data from then on (the copy for the partner is sent
// from it); on the partner, one, into its slot. A change that adds one
// fails here.
TEST_CASE("write-back: a mirrored write copies its data once on the owner, once on the partner",
          "[cache][wb]") {
  Pair p;
  CachePartitionStats owner = p.nodes[1].cache->stats(), partner = p.nodes[2].cache->stats();
  p.write(1, 8, 0x21, 3 * 4096);
  p.deliver_one();
  REQUIRE(p.front.done.size() == 1);
  const CachePartitionStats& o = p.nodes[1].cache->stats();
  const CachePartitionStats& q = p.nodes[2].cache->stats();
  CHECK(o.bytes_into_cache == owner.bytes_into_cache);
  CHECK(o.bytes_into_nvram - owner.bytes_into_nvram == 3 * 4096);
  CHECK(q.bytes_into_nvram - partner.bytes_into_nvram == 3 * 4096);
  CHECK(q.bytes_into_cache == partner.bytes_into_cache);
  // A hit copies out of the slot, once.
  CHECK(p.read(1, 9) == block_of(0x21));
  CHECK(o.bytes_out_of_cache - owner.bytes_out_of_cache == 4096);
}

// Destaged, a block keeps its slot as its clean data: still a hit, with no
// copy and no back-end read, but no longer an entry a restart would bring
// back (it could be older than what the back end holds by then).
TEST_CASE("write-back: a destaged block is served from its slot and not recovered after a crash",
          "[cache][wb]") {
  Pair p;
  p.acked_write(1, 6, 0x61);
  p.settle();
  REQUIRE(p.on_disk(6) == block_of(0x61));
  REQUIRE(p.nodes[1].cache->counts().dirty == 0);
  REQUIRE(p.nodes[1].cache->counts().clean == 1);
  std::memset(p.disk.memory.data() + 6 * 4096, 0x66, 4096);  // behind the cache's back
  CHECK(p.read(1, 6) == block_of(0x61));  // the hit
  std::filesystem::copy_file(p.nodes[1].nvram_path, p.nodes[1].nvram_path + ".crash");
  auto after = Nvram::open(p.nodes[1].nvram_path + ".crash", 2 * 32 + 64);
  REQUIRE(after);
  CHECK(after.value()->recovered().empty());
}

// The back end reads a destage's data from the version's slot while the
// host may write the block again: the old slot must stay put until the
// destage is done, or a later write's data would land in its place.
TEST_CASE("write-back: a block rewritten while being destaged keeps the destaged version intact",
          "[cache][wb]") {
  Pair p;
  p.acked_write(1, 2, 0x21);
  p.nodes[1].cache->flush_all();  // the destage starts now, held by the back end
  REQUIRE(p.nodes[1].back.pending.size() == 1);
  p.acked_write(1, 2, 0x22);       // a new version, in its own slot
  for (uint64_t b = 10; b < 14; ++b) p.acked_write(1, b, 0x30);  // slots reused if freed
  p.nodes[1].back.complete_one();
  CHECK(p.on_disk(2) == block_of(0x21));
  p.settle();
  CHECK(p.on_disk(2) == block_of(0x22));
  CHECK(p.read(1, 2) == block_of(0x22));
}

// Clean blocks keep their slots, but a writer needing slots takes them
// back rather than waiting for a destage that has nothing to do.
TEST_CASE("write-back: slots kept by clean blocks are given up to writers", "[cache][wb]") {
  Pair p(40);  // slots for the 32 blocks and 8 more
  for (uint64_t b = 0; b < 32; ++b) p.acked_write(1, b, static_cast<uint8_t>(b));
  p.settle();
  REQUIRE(p.nodes[1].cache->counts().clean == 32);
  REQUIRE(p.nodes[1].nvram->free_slots() == 8);
  size_t before = p.front.done.size();
  p.write(1, 40, 0x40, 10 * 4096);  // 10 new versions at once (a quarter of 40 at most)
  p.deliver_one();
  REQUIRE(p.front.done.size() == before + 1);
  CHECK(p.front.done.back()->status == 0);
  p.settle();
  CHECK(p.read(1, 49) == block_of(0x40));
  CHECK(p.read(1, 31) == block_of(31));
}

// A link that keeps the batches it is given, as the data channel does
// until their frames have left.
struct HoldingLink final : MirrorLink {
  std::vector<std::pair<std::shared_ptr<const MirrorBatch>, uint64_t>> held;
  void mirror(uint32_t, const MirrorBatch&, uint64_t) override {}
  void mirror_shared(uint32_t, std::shared_ptr<const MirrorBatch> batch, uint64_t id) override {
    held.emplace_back(std::move(batch), id);
  }
  void release(uint32_t, uint32_t, const std::vector<uint64_t>&,
               const std::vector<uint64_t>&) override {}
};

TEST_CASE("write-back: a copy is sent from its version's slot, kept until its batch is gone",
          "[cache][wb]") {
  Pair p;
  HoldingLink link;
  Node& owner = p.owner_with(link);
  p.write(1, 3, 0x31);  // its copy, held by the link, unanswered
  REQUIRE(link.held.size() == 1);
  std::shared_ptr<const MirrorBatch> first = link.held[0].first;
  REQUIRE(first->data.empty());
  REQUIRE(first->block_data.size() == 1);
  // A newer version of the block, and more blocks: slots are taken, and the
  // first version's would be among them if it were freed already.
  p.write(1, 3, 0x32);
  for (uint64_t b = 4; b < 20; ++b) p.write(1, b, static_cast<uint8_t>(b));
  CHECK(std::memcmp(first->block_data[0], block_of(0x31).data(), 4096) == 0);
  // Answered and let go by the link: the slot is free again.
  uint32_t free_before = owner.nvram->free_slots();
  first.reset();
  while (!link.held.empty()) {  // an answer sends the batch that gathered meanwhile
    auto held = std::move(link.held);
    link.held.clear();
    for (auto& [batch, id] : held) owner.cache->mirror_done(id, true);
  }
  CHECK(owner.nvram->free_slots() > free_before);
}

TEST_CASE("write-back: a superseded version still being sent does not come back after a crash",
          "[cache][wb]") {
  Pair p;
  HoldingLink link;
  Node& owner = p.owner_with(link);
  p.write(1, 3, 0x31);  // version 1: its batch held, unanswered
  p.write(1, 3, 0x32);  // version 2: answered, then destaged
  REQUIRE(link.held.size() == 2);
  auto second = link.held[1];
  link.held.pop_back();
  owner.cache->mirror_done(second.second, true);
  second.first.reset();
  p.settle();
  REQUIRE(p.on_disk(3) == block_of(0x32));
  REQUIRE(owner.cache->counts().dirty == 0);
  // The process dies now: what its NVRAM holds must not bring version 1
  // back (it would be destaged over version 2).
  std::filesystem::copy_file(owner.nvram_path, owner.nvram_path + ".crash");
  auto after = Nvram::open(owner.nvram_path + ".crash", 2 * 32 + 64);
  REQUIRE(after);
  for (const NvramEntry& e : after.value()->recovered())
    CHECK_FALSE((e.vdisk == kVdisk && e.offset == 3 * 4096));
  // The batch still sends version 1's data.
  CHECK(std::memcmp(link.held[0].first->block_data[0], block_of(0x31).data(), 4096) == 0);
}

TEST_CASE("write-back: a partial block is filled first, a flush waits for nothing",
          "[cache][wb]") {
  Pair p;
  std::memset(p.disk.memory.data() + 5 * 4096, 0x05, 4096);
  p.write(1, 5, 0x55, 100, 200);
  p.settle();
  auto got = p.read(1, 5);
  CHECK(got[199] == 0x05);
  CHECK(got[200] == 0x55);
  CHECK(got[299] == 0x55);
  CHECK(got[300] == 0x05);
  CHECK(p.on_disk(5) == got);
}

// The owner or the partner dies at every step of a write: before its copy
// reached the partner, after the partner stored it but before the answer,
// and after the host was told. The survivor takes over; every write the
// host was told about is on the back end; the dead node returns and, its
// copies no longer counting, serves what the survivor wrote since.
TEST_CASE("no acknowledged write is lost whichever node dies at whichever step",
          "[cache][wb]") {
  for (uint32_t victim : {1u, 2u}) {
    for (int step = 0; step < 3; ++step) {
      CAPTURE(victim, step);
      Pair p;
      auto acked = p.write(1, 1, 0x11);  // acknowledged, still dirty
      p.deliver_one();
      REQUIRE(acked->status == 0);
      REQUIRE(p.front.done.size() == 1);
      auto w = p.write(1, 2, 0x22);
      if (step >= 1) {  // the partner stores the copy; the answer is held back
        Message m = p.wire.front();
        p.wire.pop_front();
        REQUIRE(p.nodes[2].cache->store_mirror(m.batch) == 0);
        if (step == 2) {
          p.nodes[1].cache->mirror_done(m.id, true);
          REQUIRE(p.front.done.size() == 2);
        }
      }
      bool told = p.front.done.size() == 2;
      uint32_t survivor = victim == 1 ? 2 : 1;
      p.kill(victim);
      // A new generation without the victim; the survivor holds the group's
      // requests until it has committed that it runs the group alone.
      p.publish({survivor});
      p.commit_group(survivor);
      p.publish({survivor});
      p.settle();
      CHECK(p.on_disk(1) == block_of(0x11));
      if (told) CHECK(p.on_disk(2) == block_of(0x22));
      if (victim == 2) {
        // The owner's waiting write became safe once destaged.
        CHECK(p.front.done.size() == 2);
        CHECK(w->status == 0);
        CHECK(p.on_disk(2) == block_of(0x22));
      }
      // Newer data while the victim is away, then it returns: the group
      // stays with the survivor until it has destaged, then writes back.
      p.write(survivor, 1, 0x33);
      p.settle();
      CHECK(p.on_disk(1) == block_of(0x33));
      p.start(victim);
      p.publish({1, 2});
      p.settle();
      p.commit_group(0);
      p.publish({1, 2});
      p.settle();
      CHECK(p.read(1, 1) == block_of(0x33));
      // Node 2 does not own the vdisk: its cache sends the request back, and
      // the forward facility above it would send it on to node 1.
      auto elsewhere = p.submit(2, IoOp::read, 4096, 4096);
      p.settle();
      CHECK(elsewhere->status == ESTALE);
      CHECK(p.nodes[victim].cache->counts().dirty == 0);
    }
  }
}

TEST_CASE("both nodes die in write-back: the one that returns first destages its copies",
          "[cache][wb]") {
  Pair p;
  p.write(1, 4, 0x44);
  p.deliver_one();
  REQUIRE(p.front.done.size() == 1);
  p.kill(1);
  p.kill(2);
  // Node 2 returns first, alone: it takes the group over with its copy.
  p.start(2);
  p.publish({2});
  p.commit_group(2);
  p.publish({2});
  p.settle();
  CHECK(p.on_disk(4) == block_of(0x44));
  CHECK(p.nodes[2].cache->stats().promoted == 1);
  // Node 1 returns: its own copy no longer counts and is freed.
  p.start(1);
  p.publish({1, 2});
  p.settle();
  CHECK(p.nodes[1].cache->stats().discarded == 1);
  CHECK(p.nodes[1].nvram->free_slots() == p.nodes[1].nvram->slots());
}

TEST_CASE("a full cache makes writers wait for destage, it never fails them", "[cache][wb]") {
  Pair p;
  std::vector<IoRequestPtr> writes;
  for (uint64_t b = 0; b < kBlocks; ++b) writes.push_back(p.write(1, b, static_cast<uint8_t>(b)));
  // 64 blocks into a 32-block cache: some wait.
  CHECK(p.nodes[1].cache->stats().waits > 0);
  p.settle();
  REQUIRE(p.front.done.size() == kBlocks);
  for (auto& w : writes) CHECK(w->status == 0);
  for (uint64_t b = 0; b < kBlocks; ++b) CHECK(p.on_disk(b) == block_of(static_cast<uint8_t>(b)));
}

// A write larger than the whole cache could never find room: it waited
// forever (a 32 MiB NBD write to a cluster with a 4 MiB cache). One over a
// quarter of the non-volatile memory is written through.
TEST_CASE("a write larger than a quarter of the cache is written through, not held for room",
          "[cache][wb]") {
  Pair p(32);  // 8 blocks is the most a write-back write may take
  auto big = p.write(1, 0, 0x41, 40 * 4096);  // more than all of it
  auto over = p.write(1, 40, 0x42, 9 * 4096);
  auto small = p.write(1, 50, 0x43, 8 * 4096);
  p.settle();
  REQUIRE(p.front.done.size() == 3);
  for (auto& w : {big, over, small}) CHECK(w->status == 0);
  CHECK(p.nodes[1].cache->stats().waits == 0);
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
  CHECK(p.on_disk(0) == block_of(0x41));
  CHECK(p.on_disk(39) == block_of(0x41));
  CHECK(p.on_disk(48) == block_of(0x42));
  CHECK(p.on_disk(57) == block_of(0x43));
  CHECK(p.nodes[1].cache->stats().mirrored == 8);  // only the small one's blocks
}

TEST_CASE("writers waiting for room are not each tried again at every destage completion",
          "[cache][wb]") {
  Pair p;
  // Every other block, so that each destages alone: 32 fill the cache, 32
  // wait for room.
  for (uint64_t b = 0; b < kBlocks; b += 2) p.write(1, b, 1);
  for (uint64_t b = 1; b < kBlocks; b += 2) p.write(1, b, 2);
  uint64_t waits = p.nodes[1].cache->stats().waits;
  CHECK(waits > 0);
  p.settle();
  REQUIRE(p.front.done.size() == kBlocks);
  // Each waiter waits again at most a few times (not once per destage of
  // the 64 blocks, as when all were tried at every completion).
  CHECK(p.nodes[1].cache->stats().waits - waits < 2 * kBlocks);
  for (uint64_t b = 0; b < kBlocks; ++b)
    CHECK(p.on_disk(b) == block_of(static_cast<uint8_t>(b % 2 ? 2 : 1)));
}

TEST_CASE("a node that loses its lease sends what waits back up, unacknowledged",
          "[cache][wb]") {
  Pair p;
  auto w = p.write(1, 6, 0x66);  // waiting for the partner's copy
  p.wire.clear();                // which never comes
  REQUIRE(p.front.done.empty());
  auto routes = std::make_shared<RouteTable>();
  routes->self = 1;
  routes->serving = false;
  p.nodes[1].cache->set_routes(routes);
  REQUIRE(p.front.done.size() == 1);
  CHECK(w->status == ESTALE);  // (the forward facility sends it to the owner)
  // Its dirty block stays for the next table to judge: here node 1 is back
  // in the same write-back epoch, so its copy counts and is destaged.
  p.publish({1, 2});
  p.settle();
  CHECK(p.on_disk(6) == block_of(0x66));
}

TEST_CASE("a read in flight across an ownership change is not kept in the cache",
          "[cache][wb]") {
  // Node 1 reads block 5 from the back end; the read is slow (a stalled
  // device). Meanwhile node 1 loses its lease, node 2 runs the group and
  // writes block 5, and node 1 owns the vdisk again. The old read's data,
  // from before that write, must not become node 1's cached copy.
  Pair p;
  std::fill_n(p.disk.memory.begin() + 5 * 4096, 4096, uint8_t{0x11});
  auto slow = make_request();
  slow->op = IoOp::read;
  slow->volume = kVdisk;
  slow->offset = 5 * 4096;
  slow->length = 4096;
  slow->buffer = Buffer::allocate(4096);
  slow->client = &p.front;
  p.nodes[1].cache->submit(slow);
  REQUIRE(p.nodes[1].back.pending.size() == 1);
  IoRequestPtr in_flight = std::move(p.nodes[1].back.pending.front());
  p.nodes[1].back.pending.clear();

  auto lost = std::make_shared<RouteTable>();
  lost->self = 1;
  lost->serving = false;
  p.nodes[1].cache->set_routes(lost);
  p.commit_group(2);
  p.publish({2});
  p.write(2, 5, 0x22);
  p.settle();
  REQUIRE(p.on_disk(5) == block_of(0x22));
  p.commit_group(0);
  p.publish({1, 2});

  // The device answers the old read only now, with what it read then.
  auto old = block_of(0x11);
  in_flight->buffer->copy_in(in_flight->buffer_offset, 4096, old.data());
  complete(std::move(in_flight), 0);
  CHECK(p.read(1, 5) == block_of(0x22));
}

TEST_CASE("moved to another group, a vdisk whose old owner dies is handed over by its partner",
          "[cache][wb]") {
  // Node 1 owns the vdisk in group 3 and holds a dirty block, mirrored to
  // node 2. The vdisk moves to group 4 (nodes 5 and 6, not simulated here),
  // then node 1 dies before it has destaged: node 2's copy is the only one
  // left in the cluster, and node 2 must destage it for the handover.
  Pair p;
  p.write(1, 9, 0x99);
  while (p.deliver_one()) {
  }
  REQUIRE(p.front.done.size() == 1);  // acknowledged: both copies exist
  REQUIRE(p.on_disk(9) == block_of(0));
  IoGroupConfig g4;
  g4.id = 4;
  g4.name = "g4";
  g4.nodes = {5, 6};
  g4.cache_epoch = g4.wb_epoch = 40;
  p.config.iogrps.push_back(g4);
  VdiskConfig& v = p.config.vdisks[0];
  v.iogrp_id = 4;
  v.preferred_node = 5;
  v.handover_from = 1;
  v.handover_group = 3;
  v.handover_partner = 2;
  p.kill(1);
  p.publish({2, 5, 6});
  p.settle();
  CHECK(p.on_disk(9) == block_of(0x99));
  CHECK(p.nodes[2].cache->held_blocks(kVdisk) == 0);
  CHECK(p.nodes[2].cache->dirty_blocks(kVdisk) == 0);
}

// The acknowledgement rule: a write completes only once the partner holds
// its copy. A partner that refuses (its non-volatile memory is full) gets
// the copy again on a later tick, and the host waits until it takes it.
// A write its partner forwarded here (whole blocks): that node holds the
// data, so the copy goes by reference, alone and at once; from another
// node or over part of a block it goes with its data. Refused, it is sent
// again with its data (the partner may not have it any more).
TEST_CASE("write-back: a write the partner forwarded is copied by reference, refused it carries data",
          "[cache][wb]") {
  Pair p;
  auto forwarded = [&](uint64_t block, uint8_t fill, uint32_t by, uint64_t id, uint64_t len) {
    auto r = make_request();
    r->op = IoOp::write;
    r->volume = kVdisk;
    r->offset = block * 4096;
    r->length = len;
    r->buffer = Buffer::allocate(len);
    std::memset(r->buffer->data(), fill, len);
    r->client = &p.front;
    r->forwarded_by = by;
    r->forward_id = id;
    p.nodes[1].cache->submit(r);
    return r;
  };
  p.write(1, 1, 0x11);                           // a copy in flight (1 of 2)
  auto w = forwarded(3, 0x33, 2, 77, 2 * 4096);  // by reference, at once (2 of 2)
  forwarded(6, 0x66, 3, 78, 4096);               // node 3 is not the partner: waits, with data
  REQUIRE(p.wire.size() == 2);
  CHECK(p.wire[0].batch.forward_id == 0);
  CHECK(p.wire[1].batch.forward_id == 77);
  CHECK(p.wire[1].batch.blocks == std::vector<uint64_t>{3, 4});
  CHECK(p.nodes[1].cache->stats().mirrored_by_reference == 2);
  p.deliver_one();  // the first copy: its write completes, the open batch leaves
  REQUIRE(p.wire.size() == 2);
  CHECK(p.wire[1].batch.forward_id == 0);
  CHECK(p.wire[1].batch.blocks == std::vector<uint64_t>{6});
  // The copy by reference, refused by the partner.
  Message ref = std::move(p.wire[0]);
  p.wire.pop_front();
  p.nodes[1].cache->mirror_done(ref.id, false);
  CHECK(w->use_count() > 1);  // not completed
  p.nodes[1].cache->tick(p.now += 300);
  REQUIRE(p.wire.size() == 2);
  CHECK(p.wire[1].id == ref.id);
  CHECK(p.wire[1].batch.forward_id == 0);
  REQUIRE(p.wire[1].batch.data.size() == 2 * 4096);
  CHECK(static_cast<uint8_t>(p.wire[1].batch.data[4096]) == 0x33);
  p.settle();
  CHECK(w->status == 0);
  CHECK(p.front.done.size() == 3);
  CHECK(p.on_disk(4) == block_of(0x33));
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
  // A forwarded write over part of a block sends its data (the partner
  // does not have the rest of the block).
  auto part = forwarded(9, 0x99, 2, 79, 4096 + 512);
  p.settle();
  CHECK(part->status == 0);
  CHECK(p.nodes[1].cache->stats().mirrored_by_reference == 2);
}

TEST_CASE("write-back: a copy the partner refused holds the write back until it is taken",
          "[cache][wb]") {
  Pair p;
  std::vector<int64_t> taken;
  for (int64_t s; (s = p.nodes[2].nvram->allocate()) >= 0;) taken.push_back(s);
  auto w = p.write(1, 3, 0x31);
  REQUIRE(p.wire.size() == 1);
  p.deliver_one();  // refused: ENOSPC
  CHECK(p.front.done.empty());
  CHECK(p.nodes[1].cache->stats().mirror_retries == 1);
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
  p.nodes[1].cache->tick(p.now += 300);
  p.deliver_one();  // refused again
  CHECK(p.front.done.empty());
  for (int64_t s : taken) p.nodes[2].nvram->release(static_cast<uint32_t>(s));
  p.settle();
  REQUIRE(p.front.done.size() == 1);
  CHECK(w->status == 0);
  CHECK(p.on_disk(3) == block_of(0x31));
}

// A write that is not cached (write-zeroes here) must not overtake a dirty
// block of the same range on the back end: the block's later destage would
// bring the old data back.
TEST_CASE("write-back: a write through waits for the dirty blocks it overlaps", "[cache][wb]") {
  Pair p;
  p.acked_write(1, 4, 0x44);
  auto r = p.submit(1, IoOp::write_zeroes, 4 * 4096, 4096);
  CHECK(p.nodes[1].back.pending.empty());  // held back behind the dirty block
  p.settle();
  REQUIRE(p.front.done.size() == 2);
  CHECK(r->status == 0);
  CHECK(p.on_disk(4) == block_of(0));
  CHECK(p.read(1, 4) == block_of(0));
}

// A read that misses on part of its range while another part is dirty here
// must not read the stale back end for the dirty part.
TEST_CASE("write-back: a read over dirty and uncached blocks returns the dirty data",
          "[cache][wb]") {
  Pair p;
  std::memset(p.disk.memory.data() + 7 * 4096, 0x07, 4096);
  p.acked_write(1, 6, 0x66);
  auto r = p.submit(1, IoOp::read, 6 * 4096, 8192);
  p.settle();
  REQUIRE(r->status == 0);
  auto* got = reinterpret_cast<uint8_t*>(r->buffer->data());
  CHECK(std::vector<uint8_t>(got, got + 4096) == block_of(0x66));
  CHECK(std::vector<uint8_t>(got + 4096, got + 8192) == block_of(0x07));
}

// The partner refuses a copy from a sender whose epoch is behind its own:
// the group moved on, and the copy would not count.
TEST_CASE("write-back: a copy from an epoch that ended is refused", "[cache][wb]") {
  Pair p;
  p.write(1, 3, 0x31);
  Message m = p.wire.front();
  p.wire.pop_front();
  p.group().cache_epoch += 1;
  p.group().wb_epoch = p.group().cache_epoch;
  p.publish({1, 2});
  CHECK(p.nodes[2].cache->store_mirror(m.batch) == ESTALE);
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
}

// The owner loses its lease with a dirty block; its partner takes over,
// destages the copy and writes newer data; the old owner then sees the
// group both nodes run again. Its dirty block is of an epoch that ended: it
// must be dropped, never destaged over the newer data.
TEST_CASE("write-back: an owner cut off while others took over drops its stale dirty blocks",
          "[cache][wb]") {
  Pair p;
  p.acked_write(1, 5, 0x55);
  p.lose_lease(1);
  p.publish({2});
  p.commit_group(2);
  p.publish({2});
  p.settle();
  CHECK(p.on_disk(5) == block_of(0x55));  // the partner destaged its copy
  p.write(2, 5, 0x66);
  p.settle();
  REQUIRE(p.on_disk(5) == block_of(0x66));
  p.commit_group(0);
  p.publish({1, 2});
  p.settle();
  CHECK(p.on_disk(5) == block_of(0x66));
  CHECK(p.read(1, 5) == block_of(0x66));
  CHECK(p.nodes[1].cache->counts().dirty == 0);
}

// Without a lease another node may own the vdisk by now: nothing is
// destaged (it could overwrite that node's newer data), dirty blocks and
// copies wait for the next table, and destage resumes with it.
TEST_CASE("write-back: nothing is destaged without a lease", "[cache][wb]") {
  Pair p;
  p.acked_write(1, 8, 0x88);
  p.lose_lease(1);
  p.lose_lease(2);
  p.settle();
  CHECK(p.on_disk(8) == block_of(0));
  CHECK(p.nodes[1].cache->counts().dirty == 1);
  CHECK(p.nodes[2].cache->stats().copies_held == 1);
  p.publish({1, 2});
  p.settle();
  CHECK(p.on_disk(8) == block_of(0x88));
  CHECK(p.nodes[1].cache->counts().dirty == 0);
  CHECK(p.nodes[2].cache->stats().copies_held == 0);
}

// A vdisk made read-only: hosts' changes are refused at the cache, and what
// the cache already holds still reaches the back end.
TEST_CASE("write-back: a read-only vdisk refuses writes and still destages what it holds",
          "[cache][wb]") {
  Pair p;
  p.acked_write(1, 4, 0x44);  // dirty, in both NVRAMs
  auto ro = std::make_shared<VirtMap>(*p.map);
  ro->volumes[kVdisk].read_only = true;
  for (uint32_t id : {1u, 2u}) p.nodes[id].cache->set_map(ro);
  for (IoOp op : {IoOp::write, IoOp::write_zeroes, IoOp::trim}) {
    auto r = p.submit(1, op, 5 * 4096, 4096);
    REQUIRE((!p.front.done.empty() && p.front.done.back() == r));  // completed at once
    CHECK(r->status == EROFS);
  }
  CHECK(p.read(1, 4) == block_of(0x44));
  p.settle();
  CHECK(p.on_disk(4) == block_of(0x44));
  CHECK(p.on_disk(5) == std::vector<uint8_t>(4096, 0));
}

// A thin vdisk: the cache writes back only writes whose grains are
// allocated (the thin layer says so); the others go through, so that the
// thin layer allocates, or answers ENOSPC, before the host is answered.
TEST_CASE("write-back: a write to a thin vdisk's unallocated grain goes through", "[cache][wb]") {
  struct Query final : AllocationQuery {
    bool answer = false;
    bool allocated(uint32_t, uint64_t, uint64_t) const override { return answer; }
  } query;
  Pair p;
  p.map->volumes[kVdisk].grain_bytes = 32 * 1024;
  p.map->volumes[kVdisk].extent_bytes = kBytes;
  p.map->volumes[kVdisk].extents.resize(1);
  p.nodes[1].cache->set_map(p.map);
  SECTION("without the thin layer's answer, through") {
    p.write(1, 3, 0x31);
    CHECK(p.wire.empty());
    REQUIRE(p.nodes[1].back.pending.size() == 1);  // to the layer below first
    p.nodes[1].back.complete_all();
    REQUIRE(p.front.done.size() == 1);
  }
  SECTION("unallocated: through") {
    p.nodes[1].cache->set_allocation_query(&query);
    p.write(1, 3, 0x31);
    CHECK(p.wire.empty());
    CHECK(p.nodes[1].back.pending.size() == 1);
  }
  SECTION("allocated: written back") {
    query.answer = true;
    p.nodes[1].cache->set_allocation_query(&query);
    p.write(1, 3, 0x31);
    CHECK(p.wire.size() == 1);  // its copy, on the way
    CHECK(p.nodes[1].back.pending.empty());
  }
}

// The owner's I/O process restarts within its generation (faster than the
// failure detector: the group keeps its epoch), after it destaged a block
// and before the partner heard it may free its copy. The restarted cache
// must number its writes above that copy's: a copy the partner took for an
// older version of the same writer would be dropped, the write answered
// all the same, and a takeover would destage the old data. (Found by a
// chaos run: reads through the partner after a takeover returned data
// older than acknowledged writes.)
TEST_CASE("write-back: an owner restarted within its epoch numbers its writes above its old copies",
          "[cache][wb]") {
  Pair p;
  for (uint8_t fill : {0xA1, 0xA2, 0xA3}) p.acked_write(1, 5, fill);
  // Destaged on node 1, its release to node 2 still on the wire.
  for (int i = 0; i < 20 && p.on_disk(5) != block_of(0xA3); ++i) {
    p.nodes[1].back.complete_all();
    p.nodes[1].cache->tick(p.now);
    p.now += 300;
  }
  REQUIRE(p.on_disk(5) == block_of(0xA3));
  REQUIRE(p.nodes[2].cache->stats().copies_held == 1);
  p.kill(1);  // the release is lost with it
  p.now += 1000;
  p.start(1);
  p.publish({1, 2});
  p.acked_write(1, 5, 0xB1);  // the partner must hold this version now
  p.kill(1);
  p.publish({2});
  p.commit_group(2);
  p.publish({2});
  p.settle();
  CHECK(p.on_disk(5) == block_of(0xB1));
  CHECK(p.read(2, 5) == block_of(0xB1));
}

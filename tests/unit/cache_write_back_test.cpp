// The mirrored write-back cache of two nodes of an I/O group, each a cache
// facility with its own non-volatile memory (a file) over one shared back
// end, the copies between them carried by hand: every message can be held,
// delivered or lost, and either node can die at any step of a write. After
// each, the survivor takes over as the cluster would (committed group
// states, model/ownership.hpp) and every acknowledged write must be on the
// back end; a node that returns must not bring back what no longer counts.
#include <catch2/catch.hpp>

#include "cache_pair_fixture.hpp"

using namespace sve;

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

// More of the mirrored write-back pair (cache_pair_fixture.hpp): writes
// the partner forwarded, copies refused or from an ended epoch, owners
// cut off or restarted, nodes without a lease, read-only and thin vdisks.
#include <catch2/catch.hpp>

#include "cache_pair_fixture.hpp"

using namespace sve;

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

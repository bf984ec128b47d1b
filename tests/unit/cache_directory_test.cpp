// The cache directory: LRU eviction of clean blocks only, dirty blocks
// never evicted (writers wait instead), destage runs that coalesce adjacent
// dirty blocks oldest first, rewrites during a destage, and a seeded model
// check that every read returns the last write.
#include <cstring>
#include <map>
#include <random>

#include <catch2/catch.hpp>

#include "cache/cache_directory.hpp"
#include "cache/held_copies.hpp"

using namespace sve;

TEST_CASE("clean blocks are evicted least recently used first", "[cache]") {
  CacheDirectory c(3);
  CHECK(c.lookup(1, 0) == nullptr);
  for (uint64_t b : {0, 1, 2}) REQUIRE(c.insert_clean(1, b));
  REQUIRE(c.lookup(1, 0));            // 0 is now the most recently used
  REQUIRE(c.insert_clean(1, 3));      // evicts 1
  CHECK(c.lookup(1, 1) == nullptr);
  CHECK(c.lookup(1, 0) != nullptr);
  CHECK(c.lookup(1, 2) != nullptr);
  CHECK(c.counts().evictions == 1);
  CHECK(c.counts().clean == 3);
}

TEST_CASE("dirty blocks are never evicted: writers wait when all are dirty", "[cache]") {
  CacheDirectory c(2);
  REQUIRE(c.write(1, 0));
  REQUIRE(c.write(1, 1));
  CHECK(c.write(1, 2) == nullptr);
  CHECK(c.counts().write_waits == 1);
  CHECK(c.insert_clean(1, 9) == nullptr);  // a read is served, just not kept
  CHECK(c.write(1, 0) != nullptr);         // a rewrite needs no room
  DestageRun run = c.next_destage(8);
  REQUIRE(run.blocks.size() == 2);
  c.destage_done(run, true);
  CHECK(c.write(1, 2) != nullptr);  // room again: a clean block was evicted
  CHECK(c.counts().dirty == 1);
}

TEST_CASE("destage takes the oldest dirty block and its dirty neighbours", "[cache]") {
  CacheDirectory c(16);
  for (uint64_t b : {12, 10, 11, 20}) REQUIRE(c.write(1, b));
  REQUIRE(c.write(2, 11));
  DestageRun run = c.next_destage(8);
  CHECK(run.vdisk == 1);
  CHECK(run.first_block == 10);  // grown back from 12, the oldest
  CHECK(run.blocks.size() == 3);
  DestageRun next = c.next_destage(8);
  CHECK((next.vdisk == 1 && next.first_block == 20 && next.blocks.size() == 1));
  DestageRun last = c.next_destage(8);
  CHECK((last.vdisk == 2 && last.first_block == 11 && last.blocks.size() == 1));
  CHECK(c.next_destage(8).blocks.empty());
  CHECK(c.counts().destaging == 5);

  CacheDirectory d(16);
  for (uint64_t b = 0; b < 5; ++b) REQUIRE(d.write(3, b));
  std::vector<size_t> sizes;
  for (DestageRun r = d.next_destage(2); !r.blocks.empty(); r = d.next_destage(2))
    sizes.push_back(r.blocks.size());
  CHECK(sizes == std::vector<size_t>{2, 2, 1});
}

TEST_CASE("a block written during its destage stays dirty, a failed destage too",
          "[cache]") {
  CacheDirectory c(4);
  REQUIRE(c.write(1, 5));
  DestageRun run = c.next_destage(8);
  REQUIRE(run.blocks.size() == 1);
  REQUIRE(c.write(1, 5));  // rewritten while on its way to the back end
  c.destage_done(run, true);
  CHECK(c.counts().dirty == 1);
  DestageRun again = c.next_destage(8);
  REQUIRE(again.blocks.size() == 1);
  c.destage_done(again, false);  // the back end failed: nothing is lost
  CHECK(c.counts().dirty == 1);
  c.destage_done(c.next_destage(8), true);
  CHECK(c.counts().dirty == 0);
  CHECK(c.counts().clean == 1);

  REQUIRE(c.write(2, 0));
  REQUIRE(c.insert_clean(2, 1));
  c.drop(2);
  CHECK(c.lookup(2, 1) == nullptr);
  CHECK(c.lookup(2, 0) != nullptr);  // dirty: kept until destaged
  c.drop(2, true);
  CHECK(c.lookup(2, 0) == nullptr);
}

TEST_CASE("destage concurrency grows as the cache fills", "[cache]") {
  CacheCounts c;
  c.capacity = 100;
  CHECK(destage_concurrency(c, 8) == 0);
  c.dirty = 10;
  CHECK(destage_concurrency(c, 8) == 1);
  CHECK(destage_concurrency(c, 8, 200) == 0);   // young: left to absorb rewrites
  CHECK(destage_concurrency(c, 8, 2000) == 1);  // old: trickled out
  c.dirty = 50;
  CHECK(destage_concurrency(c, 8) == 4);
  c.dirty = 80;
  CHECK(destage_concurrency(c, 8) == 8);
}

TEST_CASE("every read returns the last write, whatever the cache did meanwhile", "[cache]") {
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    std::mt19937 rng(seed);
    CacheDirectory c(8);
    std::map<uint64_t, uint32_t> backend, last_written;
    std::vector<DestageRun> in_flight;
    std::map<CacheBlock*, uint32_t> payload_at_start;  // what each in-flight block carried
    auto stamp = [&](CacheBlock* b) {
      uint32_t v;
      std::memcpy(&v, c.data(*b), 4);
      return v;
    };
    uint32_t next_value = 1;
    for (int step = 0; step < 2000; ++step) {
      uint64_t block = rng() % 20;
      switch (rng() % 4) {
        case 0: {  // host write
          if (CacheBlock* b = c.write(1, block)) {
            uint32_t v = next_value++;
            std::memcpy(c.data(*b), &v, 4);
            last_written[block] = v;
          }
          break;
        }
        case 1: {  // host read
          uint32_t got;
          if (CacheBlock* b = c.lookup(1, block)) {
            got = stamp(b);
          } else {
            got = backend[block];
            if (CacheBlock* fresh = c.insert_clean(1, block)) std::memcpy(c.data(*fresh), &got, 4);
          }
          INFO("seed " << seed << " step " << step << " block " << block);
          REQUIRE(got == last_written[block]);
          break;
        }
        case 2: {  // start a destage
          DestageRun r = c.next_destage(1 + rng() % 4);
          if (r.blocks.empty()) break;
          for (CacheBlock* b : r.blocks) payload_at_start[b] = stamp(b);
          in_flight.push_back(std::move(r));
          break;
        }
        case 3: {  // a destage completes (or fails)
          if (in_flight.empty()) break;
          size_t i = rng() % in_flight.size();
          bool ok = rng() % 5 != 0;
          if (ok)
            for (size_t k = 0; k < in_flight[i].blocks.size(); ++k)
              backend[in_flight[i].first_block + k] = payload_at_start[in_flight[i].blocks[k]];
          c.destage_done(in_flight[i], ok);
          in_flight.erase(in_flight.begin() + static_cast<long>(i));
          break;
        }
      }
      const CacheCounts& n = c.counts();
      REQUIRE(n.clean + n.dirty + n.destaging <= n.capacity);
    }
  }
}

// The partner's copies, by (vdisk, block), against a std::map doing the
// same, seeded: puts that insert and replace, erases (which move entries
// back in the table), growth past its first size, erase_if and a vdisk's
// copies dropped. Blocks from a wide range grow the table; from a narrow
// one they keep it near half full, so that runs are long and wrap round
// its end.
TEST_CASE("held copies: the table agrees with a map through inserts, erases and growth",
          "[cache]") {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    const uint64_t range = seed % 2 ? 3000 : 270;
    const uint32_t puts = seed % 2 ? 6 : 5;  // of 10 steps
    std::mt19937 rng(seed);
    HeldCopies held;
    std::map<std::pair<uint32_t, uint64_t>, HeldCopy> model;
    auto agree = [&] {
      REQUIRE(held.size() == model.size());
      for (uint32_t v : {1u, 2u, 3u}) {
        size_t n = 0;
        for (const auto& [key, copy] : model) n += key.first == v;
        REQUIRE(held.count(v) == n);
      }
      for (const auto& [key, copy] : model) {
        const HeldCopy* found = held.find(key.first, key.second);
        REQUIRE(found);
        REQUIRE(found->seq == copy.seq);
        REQUIRE(found->slot == copy.slot);
      }
    };
    for (uint32_t step = 0; step < 20000; ++step) {
      uint32_t vdisk = 1 + rng() % 3;
      uint64_t block = rng() % range;
      uint32_t what = rng() % 10;
      if (what < puts) {
        HeldCopy c{step, vdisk, step, 1};
        held.put(vdisk, block, c);
        model[{vdisk, block}] = c;
      } else {
        held.erase(vdisk, block);
        model.erase({vdisk, block});
      }
      CHECK((held.find(vdisk, block) != nullptr) == model.count({vdisk, block}));
      if (step % 2500 == 0) agree();
    }
    agree();
    // erase_if sees each copy once and drops those it says.
    size_t seen = 0;
    held.erase_if([&](uint32_t vdisk, uint64_t block, const HeldCopy&) {
      ++seen;
      return (block + vdisk) % 3 == 0;
    });
    CHECK(seen == model.size());
    std::erase_if(model, [](const auto& kv) { return (kv.first.second + kv.first.first) % 3 == 0; });
    agree();
    size_t gone = 0, twos = 0;
    for (const auto& [key, copy] : model) twos += key.first == 2;
    held.erase_vdisk(2, [&](const HeldCopy& c) {
      ++gone;
      CHECK(c.origin == 2);
    });
    CHECK(gone == twos);
    std::erase_if(model, [](const auto& kv) { return kv.first.first == 2; });
    agree();
    CHECK(held.count(2) == 0);
  }
}

// Power cuts against SVE's own durable writes (tests/unit/power_cut.hpp):
// whatever a store acknowledged survives, whatever it did not may be lost
// but never comes back torn. Each case runs many seeds; a failing one is
// printed and replays alone (SVE_POWER_SEED=N).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "cluster/host/file_env.hpp"
#include "cluster/rsm/replicated_state.hpp"
#include "cluster/state/config_store.hpp"
#include "hw/nvram/nvram.hpp"
#include "power_cut.hpp"

using namespace sve;
using sve::test::PowerCut;
using sve::test::PowerFailure;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sve-power-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Seeds 1..n, or just the one in SVE_POWER_SEED.
std::pair<uint64_t, uint64_t> seeds(uint64_t n) {
  if (const char* one = std::getenv("SVE_POWER_SEED")) {
    uint64_t s = std::strtoull(one, nullptr, 10);
    return {s, s};
  }
  return {1, n};
}

std::vector<char> payload(uint64_t version) {
  // Sizes vary, so a cut can leave a copy longer or shorter than it was.
  return std::vector<char>(version * 389 % 1700 + 1, static_cast<char>('a' + version % 26));
}

}  // namespace

TEST_CASE("a power cut keeps every configuration the store acknowledged", "[power]") {
  auto [first, last] = seeds(400);
  for (uint64_t seed = first; seed <= last; ++seed) {
    CAPTURE(seed);
    TempDir dir;
    std::mt19937_64 rng(seed);
    uint64_t acked = 0;
    bool in_flight = false;
    {
      PowerCut power;
      ConfigStore store(dir.path);
      REQUIRE(store.load());
      uint64_t saves = 1 + rng() % 6;
      // Each save syncs the copy, then its directory: the power may fail
      // before any of them.
      if (rng() % 2) power.fail_at_sync(static_cast<int>(1 + rng() % (2 * saves)));
      try {
        for (uint64_t v = 1; v <= saves; ++v) {
          in_flight = true;
          Status saved = store.save(v, payload(v));  // may throw PowerFailure
          REQUIRE(saved);
          in_flight = false;
          acked = v;
        }
      } catch (const PowerFailure&) {
      }
      power.cut(seed, seed % 4 == 0);
    }
    auto loaded = ConfigStore(dir.path).load();
    REQUIRE(loaded);  // a torn first save must not make the store refuse to start
    if (acked == 0) {
      // Nothing was acknowledged: empty, or the first version whole.
      if (loaded.value()) CHECK(loaded.value()->version == 1);
      continue;
    }
    REQUIRE(loaded.value());
    uint64_t v = loaded.value()->version;
    CHECK((v == acked || (in_flight && v == acked + 1)));
    CHECK(loaded.value()->payload == payload(v));
  }
}

namespace {

using cluster::Entry;
using cluster::ReplicatedState;
using cluster::Response;

struct Counter final : cluster::Rsm {
  std::string name() const override { return "counter"; }
  void apply(uint64_t, const Entry& event, std::string& state,
             std::vector<Response>&) override {
    state = std::to_string((state.empty() ? 0 : std::stoull(state)) + std::stoull(event.payload));
  }
};

}  // namespace

TEST_CASE("after a power cut the cluster state copies recover to an event boundary",
          "[power][cluster]") {
  auto [first, last] = seeds(200);
  for (uint64_t seed = first; seed <= last; ++seed) {
    CAPTURE(seed);
    TempDir dir;
    std::mt19937_64 rng(seed);
    uint64_t acked = 0;
    Counter rsm;
    cluster::Durable durable;
    {
      PowerCut power;
      cluster::FileEnv env(dir.path, "", [](cluster::NodeId, cluster::Message) {});
      ReplicatedState rs(1, env, [] { return true; }, [](uint64_t, const Response&) {});
      rs.add(rsm);
      rs.recover();
      uint64_t events = 1 + rng() % 5;
      // Each event: copy A (two syncs), then copy B (two), then the node's
      // durable record.
      if (rng() % 4) power.fail_at_sync(static_cast<int>(1 + rng() % (6 * events)));
      try {
        for (uint64_t seq = 1; seq <= events; ++seq) {
          rs.apply(seq, Entry{{}, std::to_string(seq), {}});
          acked = seq;
          durable.committed = seq;
          durable.incarnation = seed;
          env.persist(durable);
        }
      } catch (const PowerFailure&) {
      }
      power.cut(seed, seed % 5 == 0);
    }
    cluster::FileEnv env(dir.path, "", [](cluster::NodeId, cluster::Message) {});
    // The copies: A at most one event ahead of B, each whole.
    cluster::StateCopy a = env.read_copy(0), b = env.read_copy(1);
    CHECK(a.seq >= b.seq);
    CHECK(a.seq <= b.seq + 1);
    ReplicatedState rs(1, env, [] { return true; }, [](uint64_t, const Response&) {});
    rs.add(rsm);
    rs.recover();
    uint64_t seq = rs.applied();
    // The last applied event is kept (both copies synced) or the one being
    // applied, never an older one; its state is the sum 1+2+...+seq.
    CHECK(seq >= acked);
    CHECK(seq <= acked + 1);
    if (seq > 0) CHECK(rs.state().states.at("counter") == std::to_string(seq * (seq + 1) / 2));
    CHECK(env.read_copy(0) == env.read_copy(1));  // recovery re-derived the other copy
    cluster::Durable loaded = env.load();
    CHECK(loaded.committed >= (acked > 0 ? acked - 1 : 0));  // persisted after each apply
  }
}

namespace {

uint8_t fill_of(uint64_t block, uint64_t seq) { return static_cast<uint8_t>(block * 31 + seq * 7 + 1); }

}  // namespace

// The NVRAM is memory that survives the process, not the machine, unless
// flushed: after a cut every entry recovered is one that was stored, whole,
// and every entry that was flushed (and not released) is back, or a newer
// one of its block.
TEST_CASE("after a power cut NVRAM recovery keeps whole entries and everything flushed",
          "[power][nvram]") {
  auto [first, last] = seeds(300);
  constexpr uint32_t kSlots = 24;
  for (uint64_t seed = first; seed <= last; ++seed) {
    CAPTURE(seed);
    TempDir dir;
    std::string path = dir.path + "/nvram";
    std::mt19937_64 rng(seed);
    std::map<uint64_t, std::pair<uint32_t, uint64_t>> live;  // block -> slot, seq
    std::map<uint64_t, uint64_t> flushed;                    // block -> seq at the flush
    std::set<uint64_t> released;  // blocks released since the flush
    uint64_t next_seq = 1;
    {
      PowerCut power;
      auto nv = std::move(Nvram::open(path, kSlots).value());
      int round = 0;
      auto store_one = [&](uint64_t block) {
        int64_t slot = nv->allocate();
        if (slot < 0) return;
        uint64_t seq = next_seq++;
        std::vector<uint8_t> data(4096, fill_of(block, seq));
        NvramEntry e{static_cast<uint32_t>(slot), 1, 9, block * 4096, 4096, seq, 3};
        REQUIRE(nv->store(e.slot, e, data.data()));
        if (auto old = live.find(block); old != live.end()) {
          nv->release(old->second.first);  // superseded: gone once the new one lands
          if (round == 1) released.insert(block);
        }
        live[block] = {e.slot, seq};
      };
      for (; round < 2; ++round) {
        for (int i = 0; i < 12; ++i) {
          uint64_t block = rng() % 10;
          if (rng() % 4 == 0 && live.count(block)) {
            nv->release(live[block].first);
            live.erase(block);
            if (round == 1) released.insert(block);
          } else {
            store_one(block);
          }
        }
        if (round == 0) {
          REQUIRE(nv->flush());
          for (auto& [block, at] : live) flushed[block] = at.second;
        }
      }
      power.cut(seed, seed % 5 == 0);
    }
    auto nv = std::move(Nvram::open(path, kSlots).value());
    std::set<uint64_t> seen;
    for (const NvramEntry& e : nv->recovered()) {
      uint64_t block = e.offset / 4096;
      CAPTURE(block, e.seq);
      CHECK(e.length == 4096);
      CHECK(seen.insert(block).second);  // the newest only
      auto* p = static_cast<const uint8_t*>(nv->data(e.slot));
      CHECK(std::all_of(p, p + 4096, [&](uint8_t x) { return x == fill_of(block, e.seq); }));
    }
    for (auto& [block, seq] : flushed) {
      if (released.count(block)) continue;
      CAPTURE(block, seq);
      bool back = false;
      for (const NvramEntry& e : nv->recovered())
        if (e.offset / 4096 == block && e.seq >= seq) back = true;
      CHECK(back);
    }
    CHECK(nv->free_slots() + nv->recovered().size() == kSlots);
  }
}

// The supervisor's battery dump: what an I/O process stored in its NVRAM
// and never flushed, before it died, survives a power cut once saved.
TEST_CASE("the battery dump makes a dead process's NVRAM survive a power cut", "[power][nvram]") {
  auto [first, last] = seeds(60);
  for (uint64_t seed = first; seed <= last; ++seed) {
    CAPTURE(seed);
    TempDir dir;
    std::string path = dir.path + "/nvram-core0";
    {
      PowerCut power;
      {
        auto nv = std::move(Nvram::open(path, 8).value());
        for (uint64_t block = 0; block < 5; ++block) {
          std::vector<uint8_t> data(4096, fill_of(block, 1));
          NvramEntry e{static_cast<uint32_t>(nv->allocate()), 1, 9, block * 4096, 4096, 1, 3};
          REQUIRE(nv->store(e.slot, e, data.data()));
        }
      }  // the process is gone; its stores are in the page cache only
      REQUIRE(save_nvram_files(dir.path) == 1);
      power.cut(seed, seed % 2 == 0);
    }
    auto nv = std::move(Nvram::open(path, 8).value());
    CHECK(nv->recovered().size() == 5);
    for (const NvramEntry& e : nv->recovered()) {
      auto* p = static_cast<const uint8_t*>(nv->data(e.slot));
      CHECK(std::all_of(p, p + 4096, [&](uint8_t x) { return x == fill_of(e.offset / 4096, 1); }));
    }
  }
}

#pragma once
// Two nodes of an I/O group, each a cache facility with its own
// non-volatile memory (a file) over one shared back end, the copies
// between them carried by hand (cache_write_back_test.cpp and
// cache_write_back_cases_test.cpp).
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

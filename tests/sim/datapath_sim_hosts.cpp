// The data-path simulator: the hosts' requests and the checker.
#include "tests/sim/datapath_sim_impl.hpp"

namespace sve::datapath_sim::detail {

// ---- hosts and the checker -------------------------------------------------

// A block written by write `value`: its id, its place, then a pattern of both.
static void fill_block(uint8_t* b, uint64_t value, uint32_t vdisk, uint64_t block) {
  std::memcpy(b, &value, 8);
  uint64_t where = (uint64_t{vdisk} << 32) | block;
  std::memcpy(b + 8, &where, 8);
  for (uint64_t i = 16; i < kBlock; ++i) b[i] = static_cast<uint8_t>(value * 131 + block + i);
}

// The write a block holds (0: never written), or false if it is no block any
// write of this checker left whole.
static bool read_block(const uint8_t* b, uint32_t vdisk, uint64_t block, uint64_t& value) {
  std::memcpy(&value, b, 8);
  if (value == 0) {
    for (uint64_t i = 0; i < kBlock; ++i)
      if (b[i]) return false;
    return true;
  }
  uint8_t expect[kBlock];
  fill_block(expect, value, vdisk, block);
  return std::memcmp(expect, b, kBlock) == 0;
}

void Sim::issue(Node& n, uint32_t vdisk, uint64_t first, uint32_t blocks, IoOp kind,
                bool is_sweep) {
  for (uint32_t b = 0; b < blocks; ++b)
    if (busy.count({vdisk, first + b})) return;
  Op op;
  op.id = next_op++;
  op.node = n.id;
  op.vdisk = vdisk;
  op.first = first;
  op.blocks = blocks;
  op.kind = kind;
  op.sweep = is_sweep;
  IoRequestPtr r = make_request();
  r->op = kind;
  r->volume = vdisk;
  r->offset = first * kBlock;
  r->length = kind == IoOp::flush ? 0 : blocks * kBlock;
  r->client = &n.host;
  if (kind == IoOp::read || kind == IoOp::write) r->buffer = Buffer::allocate(r->length);
  if (kind == IoOp::write) {
    op.value = op.id;
    std::vector<uint8_t> data(r->length);
    for (uint32_t b = 0; b < blocks; ++b)
      fill_block(data.data() + b * kBlock, op.value, vdisk, first + b);
    r->buffer->copy_in(0, r->length, data.data());
  }
  if (kind != IoOp::flush)
    for (uint32_t b = 0; b < blocks; ++b) busy.insert({vdisk, first + b});
  op_of[r.get()] = op.id;
  op.request = r.get();
  ops[op.id] = op;
  ++n.host_in_flight;
  n.forward->submit(std::move(r));
}

void Sim::check_read(const Op& op, const IoRequest& r) {
  std::vector<uint8_t> data(r.length);
  r.buffer->copy_out(r.buffer_offset, r.length, data.data());
  for (uint32_t b = 0; b < op.blocks; ++b) {
    uint64_t block = op.first + b, value = 0;
    std::string where = "vdisk " + std::to_string(op.vdisk) + " block " + std::to_string(block) +
                        " read through node " + std::to_string(op.node);
    if (!read_block(data.data() + b * kBlock, op.vdisk, block, value))
      return fail(where + ": torn or foreign data");
    auto& ok = acceptable(op.vdisk, block);
    if (!ok.count(value)) {
      std::string want;
      for (uint64_t w : ok) want += " " + std::to_string(w);
      return fail(where + ": holds write " + std::to_string(value) + ", expected one of:" + want);
    }
    ++result.blocks_checked;
  }
  ++result.reads_checked;
}

void Sim::host_done(Node& n, IoRequestPtr r) {
  auto found = op_of.find(r.get());
  if (found == op_of.end()) return fail("a completion for no host request");
  uint64_t id = found->second;
  op_of.erase(found);
  Op op = ops[id];
  if (n.host_in_flight) --n.host_in_flight;
  if (opt.trace && op.kind != IoOp::flush && std::getenv("DPSIM_WATCH")) {
    uint64_t watch = std::strtoull(std::getenv("DPSIM_WATCH"), nullptr, 10);
    if (op.vdisk == (watch >> 32) && op.first <= (watch & 0xffffffff) &&
        (watch & 0xffffffff) < op.first + op.blocks)
      trace("op " + std::to_string(op.id) + (op.kind == IoOp::write ? " write" : " read") +
            " via node " + std::to_string(op.node) + " blocks " + std::to_string(op.first) + "+" +
            std::to_string(op.blocks) + " status " + std::to_string(r->status) +
            (op.abandoned ? " (abandoned)" : ""));
  }
  if (op.abandoned) return;  // its host gave up on it with the node
  if (r->status != 0) {
    ++result.io_errors;
    if (op.kind == IoOp::write)
      for (uint32_t b = 0; b < op.blocks; ++b)
        acceptable(op.vdisk, op.first + b).insert(op.value);
    if (op.sweep && settling) fail("a read after everything healed failed: errno " +
                                   std::to_string(r->status));
  } else if (op.kind == IoOp::write) {
    for (uint32_t b = 0; b < op.blocks; ++b) acceptable(op.vdisk, op.first + b) = {op.value};
    ++result.writes_acked;
  } else if (op.kind == IoOp::read) {
    check_read(op, *r);
  }
  for (uint32_t b = 0; b < op.blocks && op.kind != IoOp::flush; ++b)
    busy.erase({op.vdisk, op.first + b});
  ops.erase(id);
}

// An abandoned request's blocks are free again once nothing of it can land.
void Sim::release_abandoned() {
  for (auto it = ops.begin(); it != ops.end();) {
    Op& op = it->second;
    if (!op.abandoned || op.remote > 0 || now_us < op.quiet_at) {
      ++it;
      continue;
    }
    for (uint32_t b = 0; b < op.blocks && op.kind != IoOp::flush; ++b)
      busy.erase({op.vdisk, op.first + b});
    it = ops.erase(it);
  }
}

void Sim::workload() {
  std::vector<Node*> up;
  for (auto& [id, n] : nodes)
    if (n.up) up.push_back(&n);
  if (up.empty()) return;
  // The reads owed after an event first, a few at a time.
  for (int i = 0; i < 4 && !sweep.empty(); ++i) {
    auto [v, blk] = *sweep.begin();
    Node& n = *up[rand(up.size())];
    uint64_t end = blk;
    for (auto [a, b] : kHotRuns)
      if (blk >= a && blk < b) end = std::min<uint64_t>(b, blk + 4);
    bool free = true;
    for (uint64_t x = blk; x < end; ++x) free = free && !busy.count({v, x});
    if (!free) break;
    sweep.erase(sweep.begin());
    issue(n, v, blk, static_cast<uint32_t>(end - blk), IoOp::read, true);
  }
  if (quiet) return;
  for (Node* n : up) {
    if (n->host_in_flight >= kHostDepth || !chance(0.6)) continue;
    uint32_t v = vdisk_ids[rand(kVdisks)];
    auto [a, b] = kHotRuns[rand(std::size(kHotRuns))];
    uint64_t first = a + rand(b - a);
    uint32_t blocks = static_cast<uint32_t>(std::min<uint64_t>(1 + rand(4), b - first));
    uint64_t pick = rand(100);
    IoOp kind = pick < 55 ? IoOp::write : pick < 97 ? IoOp::read : IoOp::flush;
    issue(*n, v, first, blocks, kind, false);
  }
}

}  // namespace sve::datapath_sim::detail

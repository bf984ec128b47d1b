#include "tools/svectl/verifying_workload.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "io/nbd/nbd_client.hpp"
#include "io/nbd/nbd_wire.hpp"

namespace sve {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kMagic = 0x5356455645524946ull;  // "SVEVERIF", as verifier.py
constexpr int kReplyTimeoutMs = 20000;
constexpr uint64_t kGapMs = 500;  // a pause this long is an unavailability window

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

}  // namespace

std::vector<uint8_t> stamped_block(uint64_t block, uint64_t gen) {
  std::vector<uint8_t> out(kBlock);
  put_be64(out.data(), kMagic);
  put_be64(out.data() + 8, block);
  put_be64(out.data() + 16, gen);
  uint64_t fill = block * 1000003 + gen * 7919;
  for (size_t at = 24; at + 8 <= kBlock; at += 8) put_be64(out.data() + at, fill);
  return out;
}

std::optional<uint64_t> stamped_generation(const uint8_t* data, uint64_t block) {
  if (std::all_of(data, data + kBlock, [](uint8_t b) { return b == 0; })) return 0;
  if (nbd::get_u64(data) != kMagic || nbd::get_u64(data + 8) != block) return std::nullopt;
  uint64_t gen = nbd::get_u64(data + 16);
  if (std::memcmp(data, stamped_block(block, gen).data(), kBlock) != 0) return std::nullopt;
  return gen;
}

VerifyingWorkload::VerifyingWorkload(std::vector<HostPortAddress> nodes, std::string vdisk,
                                     uint64_t blocks, uint64_t seed, uint32_t depth)
    : nodes_(std::move(nodes)), vdisk_(std::move(vdisk)), blocks_(blocks), rng_(seed),
      depth_(depth) {}

bool VerifyingWorkload::acceptable(const Block& b, uint64_t gen) const {
  if (gen == 0) return b.acked == 0;
  if (gen < b.acked) return false;
  return std::find(b.sent.begin(), b.sent.end(), gen) != b.sent.end();
}

void VerifyingWorkload::note_wrong(const std::string& what) {
  if (stats_.wrong.size() < 10) stats_.wrong.push_back(what);
}

void VerifyingWorkload::run(const std::atomic<bool>& stop) {
  struct InFlight {
    uint64_t block;
    bool write;
    uint64_t gen;  // written, or the floor a read must find
  };
  uint64_t last_done = now_ms();
  uint64_t cookie = 0;
  auto completed = [&] {
    uint64_t now = now_ms();
    if (now - last_done >= kGapMs) stats_.unavailable.emplace_back(wall_ms() - (now - last_done), now - last_done);
    last_done = now;
  };
  std::uniform_int_distribution<uint64_t> pick(0, blocks_.size() - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::vector<uint8_t> data(kBlock);
  while (!stop.load()) {
    const HostPortAddress& node = nodes_[node_index_ % nodes_.size()];
    auto client = NbdClient::open(node, vdisk_, kReplyTimeoutMs);
    if (!client) {
      ++node_index_;  // the next node, after a short pause
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    std::map<uint64_t, InFlight> in_flight;
    bool healthy = true;
    while (healthy && !stop.load()) {
      while (in_flight.size() < depth_) {
        uint64_t b = pick(rng_);
        Block& block = blocks_[b];
        if (block.busy) continue;
        block.busy = true;
        InFlight op{b, !(block.acked && percent(rng_) < 20), 0};
        uint64_t c = ++cookie;
        if (op.write) {
          op.gen = next_gen_++;
          block.sent.push_back(op.gen);
          auto payload = stamped_block(b, op.gen);
          healthy = client->send(nbd::kCmdWrite, c, b * kBlock, kBlock, payload.data());
        } else {
          op.gen = block.acked;
          healthy = client->send(nbd::kCmdRead, c, b * kBlock, kBlock);
        }
        in_flight[c] = op;
        if (!healthy) break;
      }
      if (!healthy) break;
      auto reply = client->reply();
      if (!reply) break;
      auto it = in_flight.find(reply->cookie);
      if (it == in_flight.end()) break;  // not ours: the stream is out of step
      InFlight op = it->second;
      in_flight.erase(it);
      Block& block = blocks_[op.block];
      block.busy = false;
      if (reply->error) {
        ++stats_.failures;
        ++stats_.error_replies;
        healthy = false;  // another node may do better
        break;
      }
      if (op.write) {
        block.acked = std::max(block.acked, op.gen);
        ++stats_.writes_acked;
      } else {
        if (!client->read_data(data.data(), kBlock)) break;
        ++stats_.reads_checked;
        auto gen = stamped_generation(data.data(), op.block);
        if (!gen || !acceptable(block, *gen) || *gen < op.gen) {
          ++stats_.wrong_reads;
          note_wrong("block " + std::to_string(op.block) + " read " +
                     (gen ? "generation " + std::to_string(*gen) : std::string("foreign data")) +
                     " after generation " + std::to_string(op.gen) + " was acknowledged");
        }
      }
      completed();
    }
    // Whatever was in flight got no answer: sent, maybe landed, not acked.
    for (auto& [c, op] : in_flight) blocks_[op.block].busy = false;
    if (!stop.load()) {
      ++stats_.failures;
      ++node_index_;
    }
  }
}

VerifyResult VerifyingWorkload::verify(const HostPortAddress& node, uint64_t deadline_ms) {
  VerifyResult result;
  constexpr uint64_t kChunk = 256;  // blocks a read
  std::vector<uint8_t> data(kChunk * kBlock);
  uint64_t next = 0;
  while (next < blocks_.size() && now_ms() < deadline_ms) {
    auto client = NbdClient::open(node, vdisk_, kReplyTimeoutMs);
    if (!client) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    while (next < blocks_.size()) {
      uint64_t count = std::min<uint64_t>(kChunk, blocks_.size() - next);
      if (!client->send(nbd::kCmdRead, next, next * kBlock, static_cast<uint32_t>(count * kBlock)))
        break;
      auto reply = client->reply();
      if (!reply || reply->error || !client->read_data(data.data(), count * kBlock)) break;
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t b = next + i;
        auto gen = stamped_generation(data.data() + i * kBlock, b);
        const Block& block = blocks_[b];
        if (!gen) {
          ++result.wrong;
          if (result.examples.size() < 10)
            result.examples.push_back("block " + std::to_string(b) + " holds foreign data");
        } else if (!acceptable(block, *gen)) {
          ++result.lost;
          if (result.examples.size() < 10)
            result.examples.push_back("block " + std::to_string(b) + " holds generation " +
                                      std::to_string(*gen) + "; generation " +
                                      std::to_string(block.acked) + " was acknowledged");
        }
      }
      next += count;
    }
    if (next < blocks_.size()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  result.blocks = next;
  result.complete = next == blocks_.size();
  return result;
}

}  // namespace sve

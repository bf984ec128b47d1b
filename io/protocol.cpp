#include "io/protocol.hpp"

#include <algorithm>

namespace sve {

const char* to_string(IoOp op) {
  switch (op) {
    case IoOp::read: return "read";
    case IoOp::write: return "write";
    case IoOp::flush: return "flush";
    case IoOp::trim: return "trim";
    case IoOp::write_zeroes: return "write_zeroes";
    case IoOp::block_status: return "block_status";
    case IoOp::compare_and_write: return "compare_and_write";
    case IoOp::or_write: return "or_write";
  }
  return "?";
}

namespace {

uint32_t buffer_extents(const IoRequest& r) {
  if (!r.buffer || r.buffer->size() < r.buffer_offset + 4) return 0;
  return static_cast<uint32_t>((r.buffer->size() - r.buffer_offset - 4) / 8);
}

}  // namespace

void block_status_request(IoRequest& r, uint32_t max_extents) {
  uint32_t n = std::min(max_extents, buffer_extents(r));
  r.buffer->copy_in(r.buffer_offset, 4, &n);
}

uint32_t block_status_capacity(const IoRequest& r) {
  uint32_t have = buffer_extents(r);
  if (have == 0) return 0;
  uint32_t asked = 0;
  r.buffer->copy_out(r.buffer_offset, 4, &asked);
  return std::min(asked, have);
}

void put_block_status(IoRequest& r, const StatusExtent* extents, size_t n) {
  uint32_t cap = block_status_capacity(r);
  std::vector<StatusExtent> out;
  for (size_t i = 0; i < n; ++i) {
    if (extents[i].length == 0) continue;
    if (!out.empty() && out.back().flags == extents[i].flags &&
        uint64_t{out.back().length} + extents[i].length <= UINT32_MAX) {
      out.back().length += extents[i].length;
      continue;
    }
    if (out.size() == cap) break;
    out.push_back(extents[i]);
  }
  uint32_t count = static_cast<uint32_t>(out.size());
  r.buffer->copy_in(r.buffer_offset, 4, &count);
  if (count) r.buffer->copy_in(r.buffer_offset + 4, count * 8ull, out.data());
}

void put_all_data(IoRequest& r) {
  StatusExtent all{static_cast<uint32_t>(std::min<uint64_t>(r.length, UINT32_MAX)), 0};
  put_block_status(r, &all, 1);
}

std::vector<StatusExtent> get_block_status(const IoRequest& r) {
  uint32_t count = 0;
  if (buffer_extents(r) == 0) return {};
  r.buffer->copy_out(r.buffer_offset, 4, &count);
  if (count == 0 || count > buffer_extents(r)) return {};
  std::vector<StatusExtent> out(count);
  r.buffer->copy_out(r.buffer_offset + 4, count * 8ull, out.data());
  uint64_t total = 0;
  for (const auto& e : out) {
    if (e.length == 0 || (e.flags & ~(status_flags::hole | status_flags::zero))) return {};
    total += e.length;
  }
  if (total > r.length) return {};
  return out;
}

std::vector<ReadRun> read_runs(const IoRequest& r) {
  if (r.length == 0) return {};
  if (r.hole_mask == 0 || r.hole_unit == 0) return {{0, r.length, false}};
  const uint64_t unit = r.hole_unit, end = r.offset + r.length;
  const uint64_t first = r.offset / unit;
  std::vector<ReadRun> runs;
  for (uint64_t u = first; u <= (end - 1) / unit; ++u) {
    bool hole = u - first < 64 && (r.hole_mask >> (u - first)) & 1;
    uint64_t a = std::max(u * unit, r.offset), b = std::min((u + 1) * unit, end);
    if (!runs.empty() && runs.back().hole == hole) runs.back().length += b - a;
    else runs.push_back({a - r.offset, b - a, hole});
  }
  return runs;
}

constinit thread_local CompletionQueue* CompletionQueue::tls_current_ = nullptr;

size_t CompletionQueue::run() {
  if (draining_) return 0;  // a completion ran the queue: the outer call goes on
  draining_ = true;
  // One round: those queued by these completions wait for the next call, so
  // that a client which resubmits from its completion (the requests never
  // run out) does not keep the reactor from its mailbox and its ring.
  running_.swap(pending_);
  for (auto& request : running_) {
    IoClient* client = request->client;
    client->io_done(std::move(request));
  }
  size_t ran = running_.size();
  running_.clear();
  draining_ = false;
  return ran;
}

}  // namespace sve

#include "io/request_pool.hpp"

namespace sve {

void IoRequest::recycle() {
  if (pool_) {
    pool_->recycle(this);
    return;
  }
  delete this;
}

}  // namespace sve

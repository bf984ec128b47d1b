#include "virt/virtualizer.hpp"

#include <cassert>
#include <cerrno>

namespace sve {

Virtualizer::Virtualizer(IoServer& lower, RequestPool* pool, PoolAccount* account)
    : lower_(lower), pool_(pool), account_(account) {
  waiter_.owner = this;
  waiter_.account = account;
}

Virtualizer::~Virtualizer() {
  if (account_) account_->cancel(waiter_);
}

uint32_t Virtualizer::plan(IoRequestPtr& request) {
  const VolumeLayout* layout = map_ ? map_->find(request->volume) : nullptr;
  if (!layout) {
    complete(std::move(request), ENODEV);
    return 0;
  }
  uint32_t n = 0;
  if (request->op == IoOp::block_status) {  // every extent is there: all data
    if (request->offset + request->length < request->offset ||
        request->offset + request->length > layout->size_bytes) {
      complete(std::move(request), ERANGE);
      return 0;
    }
    put_all_data(*request);
    complete(std::move(request), 0);
    return 0;
  }
  if (request->op == IoOp::flush) {
    n = static_cast<uint32_t>(layout->mdisks.size());
  } else {
    uint64_t end = request->offset + request->length;
    if (end < request->offset || end > layout->addressable_bytes()) {
      complete(std::move(request), ERANGE);
      return 0;
    }
    if (!split_range(*layout, request->offset, request->length, scratch_)) {
      complete(std::move(request), EINVAL);  // larger than any host request
      return 0;
    }
    n = static_cast<uint32_t>(scratch_.size());
  }
  if (n == 0) complete(std::move(request), 0);  // zero length, or no extents
  return n;
}

nlohmann::json Virtualizer::inspect() const {
  return {{"requests", stats_.requests}, {"pieces", stats_.pieces},
          {"split_requests", stats_.split_requests},
          {"waited_for_pieces", stats_.waited_for_pieces}, {"waiting", waiting_.size()}};
}

void Virtualizer::submit(IoRequestPtr request) {
  ++stats_.requests;
  uint32_t n = plan(request);
  if (n == 0) return;
  if (!pool_) {
    issue(std::move(request), n, false, true);
    return;
  }
  // All pieces at once, in arrival order: behind requests already waiting.
  if (waiting_.empty() && account_->try_acquire(n)) {
    issue(std::move(request), n, true, true);
    return;
  }
  ++stats_.waited_for_pieces;
  waiting_.push_back({std::move(request), n});
  if (waiting_.size() == 1) {
    waiter_.need = n;
    account_->wait(waiter_);
  }
}

// The head's pieces were granted: queue for the next one, issue this one.
bool Virtualizer::PieceWaiter::on_grant() {
  Virtualizer& v = *owner;
  Plan head = std::move(v.waiting_.front());
  v.waiting_.pop_front();
  if (!v.waiting_.empty()) {
    need = v.waiting_.front().pieces;
    v.account_->wait(*this);
  }
  v.issue(std::move(head.request), head.pieces, true, false);
  return true;
}

IoRequestPtr Virtualizer::new_piece() {
  if (!pool_) return make_request();
  // Its unit was granted with the others of this request; the piece gives
  // it back when it is released.
  return pool_->make(*account_);
}

void Virtualizer::issue(IoRequestPtr request, uint32_t n, bool charged, bool planned) {
  if (!planned) {
    // It waited: the map may have changed meanwhile. Cut it again.
    uint32_t now = plan(request);
    if (now != n) {
      if (charged) account_->release(n);
      if (now == 0) return;  // completed by plan()
      if (charged && !account_->try_acquire(now)) {
        ++stats_.waited_for_pieces;
        waiting_.push_front({std::move(request), now});
        account_->cancel(waiter_);
        waiter_.need = now;
        account_->wait(waiter_);
        return;
      }
      n = now;
    }
  }
  if (n > 1) ++stats_.split_requests;
  stats_.pieces += n;
  request->status = 0;
  request->pending_children = n;
  auto send = [&](uint32_t mdisk, uint64_t offset, uint64_t length, uint64_t within) {
    IoRequestPtr piece = new_piece();
    piece->op = request->op;
    piece->flags = request->flags;
    piece->volume = mdisk;
    piece->offset = offset;
    piece->length = length;
    piece->buffer = request->buffer;  // shared, not copied
    piece->buffer_offset = request->buffer_offset + within;
    piece->client = this;
    piece->parent = request;
    lower_.submit(std::move(piece));
  };
  if (request->op == IoOp::flush) {
    // The layout is the one plan() just read; copy the ids, as a piece's
    // completion may run inline and the map may not outlive it.
    const VolumeLayout* layout = map_->find(request->volume);
    std::vector<uint32_t> mdisks = layout->mdisks;  // flushes are rare
    for (uint32_t mdisk : mdisks) send(mdisk, 0, 0, 0);
    return;
  }
  PieceList pieces = scratch_;  // a completion inline may reuse scratch_
  for (const Piece& p : pieces) send(p.mdisk_id, p.mdisk_offset, p.length, p.request_offset);
}

void Virtualizer::io_done(IoRequestPtr piece) {
  IoRequestPtr parent = std::move(piece->parent);
  if (piece->status != 0 && parent->status == 0) parent->status = piece->status;
  piece.reset();  // back to the pool before the parent completes
  if (--parent->pending_children == 0) {
    int status = parent->status;
    complete(std::move(parent), status);
  }
}

}  // namespace sve

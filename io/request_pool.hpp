#pragma once
// A core's pool of request contexts (IoRequest). Facilities take a unit
// from their account (acquire_or_wait) and then a request with make(); the
// request goes back, and its unit to the account, when its last reference
// is dropped.
#include "io/pool/object_pool.hpp"
#include "io/protocol.hpp"

namespace sve {

class RequestPool : public ObjectPool<IoRequest> {
 public:
  using ObjectPool<IoRequest>::ObjectPool;

  // A clean request charged to `account`, which was granted one unit.
  IoRequestPtr make(PoolAccount& account) {
    IoRequest* r = take();
    r->pool_ = this;
    r->account_ = &account;
    return IoRequestPtr(r);
  }

 private:
  friend struct IoRequest;
  void recycle(IoRequest* r) {
    PoolAccount* account = r->account_;
    r->op = IoOp::read;
    r->flags = 0;
    r->volume = 0;
    r->offset = r->length = r->buffer_offset = r->cookie = 0;
    r->status = 0;
    r->client = nullptr;
    r->pending_children = 0;
    r->ring_pending = 0;
    r->ring_bytes = 0;
    r->hole_mask = 0;
    r->hole_unit = 0;
    r->miscompare_at = 0;
    r->forwarded_by = 0;
    r->forward_id = 0;
    r->intercepts_ = 0;
    r->buffer.reset();
    r->parent.reset();
    r->account_ = nullptr;
    give(r);
    account->release(1);  // may hand the unit to a waiter at once
  }
};

}  // namespace sve

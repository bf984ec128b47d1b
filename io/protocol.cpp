#include "io/protocol.hpp"

namespace sve {

const char* to_string(IoOp op) {
  switch (op) {
    case IoOp::read: return "read";
    case IoOp::write: return "write";
    case IoOp::flush: return "flush";
    case IoOp::trim: return "trim";
    case IoOp::write_zeroes: return "write_zeroes";
  }
  return "?";
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

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

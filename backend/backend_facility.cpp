// The block back end (backend/backend_facility.hpp).
#include "backend/backend_facility.hpp"

#include <linux/falloc.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "io/service_gate.hpp"

namespace sve {
namespace {

int map_result_errno(int res) {
  int err = -res;
  return err == 0 ? EIO : err;
}

}  // namespace

BackendFacility::BackendFacility(UringEngine& ring) : ring_(ring) {
  ring_.set_block_completions(this);
}

BackendFacility::~BackendFacility() { ring_.set_block_completions(nullptr); }

void BackendFacility::attach(uint32_t mdisk_id, std::shared_ptr<BlockDevice> device) {
  devices_[mdisk_id] = std::move(device);
}

void BackendFacility::detach(uint32_t mdisk_id) { devices_.erase(mdisk_id); }

nlohmann::json BackendFacility::inspect() const {
  return {{"ring_in_flight", in_flight_}, {"submitted", stats_.submitted},
          {"completed", stats_.completed}, {"errors", stats_.errors},
          {"fixed_buffer_ops", stats_.fixed_buffer_ops},
          {"buffered_fallbacks", stats_.buffered_fallbacks},
          {"inline_completions", stats_.inline_completions}, {"fenced", stats_.fenced},
          {"held", stats_.held}};
}

// Reads and writes go to the kernel one operation per buffer segment the
// request covers, on the registered buffer when there is one.
void BackendFacility::prep_rw(IoRequest& r, const BlockDevice& dev) {
  iovec parts[Buffer::kMaxSegments];
  int n = r.buffer->slice(r.buffer_offset, r.length, parts, Buffer::kMaxSegments);
  // (A buffer of another core's pool, for a point-in-time copy between
  // cores, is not in this ring's registration.)
  bool fixed = ring_.buffers_registered() && r.buffer->fixed_index() >= 0;
  uint64_t offset = r.offset;
  r.ring_pending = static_cast<uint32_t>(n);
  r.ring_bytes = 0;
  for (int i = 0; i < n; ++i) {
    auto* mem = static_cast<char*>(parts[i].iov_base);
    auto len = static_cast<unsigned>(parts[i].iov_len);
    bool direct = dev.can_go_direct(offset, len, mem);
    if (!direct) ++stats_.buffered_fallbacks;
    int fd = direct ? dev.direct_fd() : dev.buffered_fd();
    io_uring_sqe* sqe = ring_.block_sqe(&r);
    if (fixed && ring_.registered(mem, len)) {
      ++stats_.fixed_buffer_ops;
      if (r.op == IoOp::read)
        io_uring_prep_read_fixed(sqe, fd, mem, len, offset, r.buffer->fixed_index());
      else
        io_uring_prep_write_fixed(sqe, fd, mem, len, offset, r.buffer->fixed_index());
    } else if (r.op == IoOp::read) {
      io_uring_prep_read(sqe, fd, mem, len, offset);
    } else {
      io_uring_prep_write(sqe, fd, mem, len, offset);
    }
    if (r.op == IoOp::write && (r.flags & io_flags::fua)) sqe->rw_flags = RWF_DSYNC;
    offset += len;
  }
}

// Trim and write-zeroes through fallocate. Block devices only accept ranges
// aligned to their logical block size; a trim is a hint, so it shrinks to the
// aligned inside, while an unaligned write-zeroes becomes a write of zeroes
// (a rare path, and the one place the back end allocates a buffer).
bool BackendFacility::prep_zeroing(IoRequest& r, const BlockDevice& dev, bool punch) {
  if (!dev.is_block_device()) return true;
  uint64_t align = dev.direct_align();
  uint64_t start = (r.offset + align - 1) / align * align;
  uint64_t end = (r.offset + r.length) / align * align;
  bool aligned = start == r.offset && end == r.offset + r.length;
  if (aligned) return true;
  if (punch) {
    r.offset = start;
    r.length = end > start ? end - start : 0;
    return true;
  }
  r.op = IoOp::write;
  r.buffer = Buffer::allocate(r.length);
  r.buffer_offset = 0;
  std::memset(r.buffer->data(), 0, r.length);
  return false;
}

// A file's fallocate never writes zeros; a block device's may: its
// ZERO_RANGE falls back to writing them where the device cannot zero (and
// an unaligned range is written here), while a hole punch never does.
bool BackendFacility::zeroes_without_writing(const BlockDevice& dev, bool punch) {
  return !dev.is_block_device() || punch;
}

// Memory and null mdisks: the device's own work is a copy (memory) or
// nothing (null); either way the request completes here and now.
void BackendFacility::serve_synthetic(IoRequestPtr request, const BlockDevice& dev) {
  IoRequest& r = *request;
  ++stats_.inline_completions;
  ++stats_.submitted;
  ++stats_.completed;
  if (r.op != IoOp::flush && r.offset + r.length > dev.size_bytes()) {
    ++stats_.errors;
    complete(std::move(request), EIO);
    return;
  }
  char* mem = dev.memory();
  switch (r.op) {
    case IoOp::read:
    case IoOp::write: {
      iovec parts[Buffer::kMaxSegments];
      int n = r.buffer->slice(r.buffer_offset, r.length, parts, Buffer::kMaxSegments);
      uint64_t offset = r.offset;
      for (int i = 0; i < n; ++i) {
        if (r.op == IoOp::read) {
          if (mem) std::memcpy(parts[i].iov_base, mem + offset, parts[i].iov_len);
          else std::memset(parts[i].iov_base, 0, parts[i].iov_len);
        } else if (mem) {
          std::memcpy(mem + offset, parts[i].iov_base, parts[i].iov_len);
        }
        if (mem) PayloadCopies::device_bytes.fetch_add(parts[i].iov_len, std::memory_order_relaxed);
        offset += parts[i].iov_len;
      }
      break;
    }
    case IoOp::trim:
    case IoOp::write_zeroes:
      if (mem) std::memset(mem + r.offset, 0, r.length);
      break;
    case IoOp::flush:
    case IoOp::block_status:
    case IoOp::compare_and_write:  // (refused in submit)
    case IoOp::or_write:
      break;
  }
  complete(std::move(request), 0);
}

void BackendFacility::tick(uint64_t now_ms) {
  if (!hold_until_ || now_ms < hold_until_) return;
  hold_until_ = 0;
  std::deque<IoRequestPtr> held;
  held.swap(held_);
  for (auto& r : held) submit(std::move(r));
}

void BackendFacility::submit(IoRequestPtr request) {
  auto it = devices_.find(request->volume);
  // A block-status question is answered above (thin, virtualization);
  // one that got here has no answer on an mdisk.
  if (it == devices_.end() || request->op == IoOp::block_status ||
      read_modify_write(request->op)) {
    ++stats_.errors;
    complete(std::move(request), it == devices_.end() ? EIO : EINVAL);
    return;
  }
  bool change = request->op != IoOp::read && request->op != IoOp::flush;
  if (change && hold_until_ && (!held_.empty() || monotonic_ms() < hold_until_)) {
    ++stats_.held;
    held_.push_back(std::move(request));
    return;
  }
  if (change && fence_ && !fence_->may_write_back_end()) {
    ++stats_.fenced;
    ++stats_.errors;
    complete(std::move(request), EIO);
    return;
  }
  const BlockDevice& dev = *it->second;
  if (dev.kind() != DeviceKind::file) {
    serve_synthetic(std::move(request), dev);
    return;
  }
  IoRequest& r = *request;
  if (r.op == IoOp::trim) {
    prep_zeroing(r, dev, true);
    if (r.length == 0) {  // nothing aligned to discard: a trim is only a hint
      complete(std::move(request), 0);
      return;
    }
  } else if (r.op == IoOp::write_zeroes && (r.flags & io_flags::fast_zero) &&
             !zeroes_without_writing(dev, !(r.flags & io_flags::no_hole))) {
    ++stats_.errors;
    complete(std::move(request), ENOTSUP);  // it would write zeros: the host's call
    return;
  } else if (r.op == IoOp::write_zeroes) {
    prep_zeroing(r, dev, !(r.flags & io_flags::no_hole));
  }

  ++in_flight_;
  ++stats_.submitted;
  if (r.op == IoOp::read || r.op == IoOp::write) {
    if (r.length == 0) {
      --in_flight_;
      ++stats_.completed;
      complete(std::move(request), 0);
      return;
    }
    prep_rw(r, dev);
    request.detach();  // the ring holds the reference until the last completion
    return;
  }
  r.ring_pending = 1;
  r.ring_bytes = 0;
  bool fua_link = (r.op == IoOp::trim || r.op == IoOp::write_zeroes) && (r.flags & io_flags::fua);
  io_uring_sqe* sqe = ring_.block_sqe(&r, fua_link);
  switch (r.op) {
    case IoOp::flush:
      io_uring_prep_fsync(sqe, dev.buffered_fd(), 0);
      break;
    case IoOp::trim:
      io_uring_prep_fallocate(sqe, dev.buffered_fd(),
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.offset, r.length);
      break;
    case IoOp::write_zeroes: {
      int mode = (r.flags & io_flags::no_hole) ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
      io_uring_prep_fallocate(sqe, dev.buffered_fd(), mode | FALLOC_FL_KEEP_SIZE, r.offset,
                              r.length);
      break;
    }
    default:  // reads and writes were handled above
      break;
  }
  request.detach();  // the ring holds the reference until the last completion
  if (fua_link) {  // made durable by an fsync linked after it
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(ring_.block_sqe(&r), dev.buffered_fd(), IORING_FSYNC_DATASYNC);
  }
}

void BackendFacility::on_block_complete(IoRequest* raw, bool link_head, int res) {
  if (link_head) {  // its fsync completes the request
    if (res < 0) raw->status = map_result_errno(res);
    return;
  }
  if (res < 0) {
    if (raw->status == 0) raw->status = map_result_errno(res);
  } else {
    raw->ring_bytes += static_cast<uint64_t>(res);
  }
  if (--raw->ring_pending > 0) return;
  IoRequestPtr request(raw, /*add_ref=*/false);
  int status = request->status;  // an error of a linked head or a segment wins
  bool moves_data = request->op == IoOp::read || request->op == IoOp::write;
  if (status == 0 && moves_data && request->ring_bytes != request->length) {
    spdlog::error("short {} on mdisk {} at {}: {} of {} bytes", to_string(request->op),
                  request->volume, request->offset, request->ring_bytes, request->length);
    status = EIO;
  }
  if (status != 0) ++stats_.errors;
  ++stats_.completed;
  --in_flight_;
  complete(std::move(request), status);
}

}  // namespace sve

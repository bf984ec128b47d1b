#pragma once
// The one I/O protocol every facility speaks (the paper's IOClient/IOServer
// API). A facility receives requests from its IOClient through submit() and
// completes them by calling the request's client->io_done(). It knows its
// neighbours only through these two interfaces, so a facility can be inserted
// into the stack without the others changing.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <utility>
#include <vector>

#include <boost/intrusive/slist_hook.hpp>
#include <boost/intrusive_ptr.hpp>

#include "io/buffer/buffer.hpp"

namespace sve {

// block_status asks which parts of a range hold data (NBD's base:allocation);
// the layer that knows writes the answer into the request's buffer
// (put_block_status). It moves no data and never reaches the back end.
// compare_and_write (SCSI's COMPARE AND WRITE) carries 2 x length bytes:
// what the range must hold, then what to write there if it does; the
// atomic facility at the vdisk's owner runs it (atomic/atomic_facility.hpp)
// and fails it with EILSEQ on a difference. It never goes below there.
// or_write (SCSI's ORWRITE) carries length bytes that the same facility
// ORs into the range's, as one uninterrupted read and write.
enum class IoOp : uint8_t {
  read, write, flush, trim, write_zeroes, block_status, compare_and_write, or_write
};

const char* to_string(IoOp op);

// The bytes a request of `op` over `length` bytes carries down to its
// server: a write's and an or-write's data, a compare-and-write's two
// halves (what the range must hold, then what to write); none for others.
inline uint64_t data_out_bytes(IoOp op, uint64_t length) {
  switch (op) {
    case IoOp::write:
    case IoOp::or_write: return length;
    case IoOp::compare_and_write: return 2 * length;
    default: return 0;
  }
}
// Whether the atomic facility at the vdisk's owner runs `op` as one read
// and one write that no other write comes between (it never goes below).
inline bool read_modify_write(IoOp op) {
  return op == IoOp::compare_and_write || op == IoOp::or_write;
}

namespace io_flags {
inline constexpr uint32_t fua = 1u << 0;      // durable before completion
inline constexpr uint32_t no_hole = 1u << 1;  // write_zeroes must allocate
// write_zeroes only if it is faster than writing zeros: a layer that would
// write them fails it with ENOTSUP instead (the host writes them itself).
inline constexpr uint32_t fast_zero = 1u << 2;
// Those a host may set (and a peer node may pass on).
inline constexpr uint32_t host_settable = fua | no_hole | fast_zero;
}  // namespace io_flags

struct IoRequest;
using IoRequestPtr = boost::intrusive_ptr<IoRequest>;

// Receives completions. io_done may be called on any thread.
class IoClient {
 public:
  virtual ~IoClient() = default;
  virtual void io_done(IoRequestPtr request) = 0;
};

// Accepts requests. submit may be called on any thread unless the
// implementation documents otherwise.
class IoServer {
 public:
  virtual ~IoServer() = default;
  virtual void submit(IoRequestPtr request) = 0;
};

class RequestPool;
class PoolAccount;

// A request context. On the I/O path it comes from a core's RequestPool and
// goes back there when its last reference is dropped; make_request() makes
// a stand-alone one from the heap for tests and tools.
struct IoRequest : boost::intrusive::slist_base_hook<> {
  IoOp op = IoOp::read;
  uint32_t flags = 0;
  uint32_t volume = 0;   // what the volume id names depends on the layer:
                         // a vdisk above virtualization, an mdisk below it
  uint64_t offset = 0;   // bytes
  uint64_t length = 0;   // bytes
  BufferRef buffer;      // payload for read and write
  uint64_t buffer_offset = 0;  // where this request's bytes start in buffer
  int32_t status = 0;    // 0 or a positive errno, set by the server
  IoClient* client = nullptr;  // completion target; outlives the request
  uint64_t cookie = 0;   // opaque to servers, owned by the client
  IoRequestPtr parent;   // set on the pieces of a split request
  uint32_t pending_children = 0;  // for a split parent, owned by the splitter
  // Owned by the back end while the request is in its ring: ring operations
  // still to complete (one per buffer segment) and the bytes they moved.
  uint32_t ring_pending = 0;
  uint64_t ring_bytes = 0;
  // A read's holes, for a front end that can say so (NBD's OFFSET_HOLE
  // chunks): the layer that knows (thin) sets bit i when the i-th unit of
  // hole_unit bytes, counted from the offset rounded down to hole_unit,
  // stores nothing (its bytes in the buffer are zeros all the same).
  // 0: not known, all data. read_runs() reads it.
  uint64_t hole_mask = 0;
  uint32_t hole_unit = 0;
  // A COMPARE AND WRITE that failed EILSEQ: the offset, from the start of
  // the data compared, of the first byte that did not match (SBC-3 has the
  // host told it in the sense data's INFORMATION field).
  uint64_t miscompare_at = 0;
  // A write a peer node forwarded here (its node and its id for the
  // request), whose data that node still holds until answered: where that
  // node is the owner's partner, the cache has it keep its copy from that
  // data instead of sending the data back (cache_write_back.cpp). 0: not so.
  uint32_t forwarded_by = 0;
  uint64_t forward_id = 0;

  // A facility that passes a request down and wants its completion on the
  // way back up (the cache) intercepts it: the request's client and cookie
  // are saved in the request and replaced by the facility's own, with no
  // allocation; the facility restores them before completing upwards.
  // (forward, cache, the point-in-time copy facility up to three times: to
  // the vdisk's own core, a target to its source's, a piece passed to
  // another core; thin's fast path: six on the longest way down.)
  static constexpr unsigned kMaxIntercepts = 8;
  void intercept(IoClient* by, uint64_t by_cookie) {
    assert(intercepts_ < kMaxIntercepts);
    saved_[intercepts_++] = {client, cookie};
    client = by;
    cookie = by_cookie;
  }
  void restore() {
    assert(intercepts_ > 0);
    const SavedCompletion& s = saved_[--intercepts_];
    client = s.client;
    cookie = s.cookie;
  }

  // This request's bytes if they lie in one buffer segment, else null.
  char* contiguous_data() const { return buffer->contiguous(buffer_offset, length); }

  uint32_t use_count() const { return refs_.load(std::memory_order_relaxed); }

  friend void intrusive_ptr_add_ref(IoRequest* r) {
    r->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(IoRequest* r) {
    if (r->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) r->recycle();
  }

 private:
  friend class RequestPool;
  void recycle();

  struct SavedCompletion {
    IoClient* client;
    uint64_t cookie;
  };
  SavedCompletion saved_[kMaxIntercepts];
  uint8_t intercepts_ = 0;
  std::atomic<uint32_t> refs_{0};
  RequestPool* pool_ = nullptr;     // null: a stand-alone heap request
  PoolAccount* account_ = nullptr;  // charged with this request
};

inline IoRequestPtr make_request() { return IoRequestPtr(new IoRequest()); }

// IoOp::block_status: what a range holds, from its offset on, in order.
struct StatusExtent {
  uint32_t length = 0;
  uint32_t flags = 0;  // status_flags
};
namespace status_flags {
inline constexpr uint32_t hole = 1u << 0;  // no data stored (NBD_STATE_HOLE)
inline constexpr uint32_t zero = 1u << 1;  // reads as zeros (NBD_STATE_ZERO)
}  // namespace status_flags
// The buffer of a block_status request: a u32 count and that many extents
// (u32 length, u32 flags). Before submitting, the asker writes there the
// most extents it wants (block_status_request); the answer overwrites it.
// A buffer of 4 KiB takes 511.
void block_status_request(IoRequest& r, uint32_t max_extents);
uint32_t block_status_capacity(const IoRequest& r);
// Writes the answer, merging neighbours with the same flags, at most the
// capacity's extents (the last one then stops early: a shorter answer is
// allowed). The extents must not run past the request's range.
void put_block_status(IoRequest& r, const StatusExtent* extents, size_t n);
// The whole range is data: what a layer that stores every block answers.
void put_all_data(IoRequest& r);
// The answer, checked against the request's range (empty if malformed).
std::vector<StatusExtent> get_block_status(const IoRequest& r);

// A read cut where its holes (hole_mask) start and end: runs of data and of
// holes, in order, from the request's start (`from` counts from its offset).
struct ReadRun {
  uint64_t from = 0;
  uint64_t length = 0;
  bool hole = false;
};
std::vector<ReadRun> read_runs(const IoRequest& r);
// The unit and mask for a read of [offset, offset + length) whose grains
// of `grain` bytes (a power of two) are holes where `is_hole(grain index)`:
// the unit is the grain, doubled until 64 bits cover the range.
template <typename IsHole>
void mark_holes(IoRequest& r, uint64_t grain, IsHole is_hole) {
  if (r.length == 0 || grain == 0) return;
  uint64_t end = r.offset + r.length;
  uint64_t unit = grain;
  while ((end - 1) / unit - r.offset / unit >= 64) unit *= 2;
  if (unit > UINT32_MAX) return;
  uint64_t mask = 0;
  uint64_t first = r.offset / unit;
  for (uint64_t u = first; u <= (end - 1) / unit; ++u) {
    bool hole = true;
    uint64_t g_first = std::max(u * unit, r.offset) / grain;
    uint64_t g_last = (std::min((u + 1) * unit, end) - 1) / grain;
    for (uint64_t g = g_first; g <= g_last && hole; ++g) hole = is_hole(g);
    if (hole) mask |= uint64_t{1} << (u - first);
  }
  r.hole_mask = mask;
  r.hole_unit = mask ? static_cast<uint32_t>(unit) : 0;
}

// Completions deferred to the reactor's next turn. Facilities of one core
// call each other directly (no mailbox between them), so a completion that
// happens inside a submit (a cache hit, a memory mdisk, an error) would run
// the facility above while its submit is still on the stack: a splitter
// would see a piece done before it sent the next one. As SPDK's bdev layer
// does, such a completion is queued instead, and the reactor runs the queue
// between events, when no facility is on the stack. Installed only on
// reactor threads; elsewhere (tests, the simulator, the interconnect's own
// thread) a completion runs at once, as before.
class CompletionQueue {
 public:
  void push(IoRequestPtr request) { pending_.push_back(std::move(request)); }
  bool empty() const { return pending_.empty(); }
  // Runs the completions queued so far (not those they queue); returns how
  // many ran.
  size_t run();

  // This thread's queue, or null (complete() runs completions at once).
  static CompletionQueue* current() { return tls_current_; }
  static void set_current(CompletionQueue* queue) { tls_current_ = queue; }

 private:
  static constinit thread_local CompletionQueue* tls_current_;
  std::vector<IoRequestPtr> pending_, running_;
  bool draining_ = false;
};

// Completes a request towards its client with `status` (0 or errno).
inline void complete(IoRequestPtr request, int status) {
  request->status = status;
  if (CompletionQueue* queue = CompletionQueue::current()) {
    queue->push(std::move(request));
    return;
  }
  IoClient* client = request->client;
  client->io_done(std::move(request));
}

}  // namespace sve

#include "atomic/atomic_facility.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace sve {
namespace {

bool writes(IoOp op) { return op == IoOp::write || op == IoOp::write_zeroes || op == IoOp::trim; }

// Cookies of the requests this facility sends or intercepts: a host's
// write carries its generation (even); a compare-and-write's own read or
// write carries its vdisk, tagged (odd), and which of the two it is.
constexpr uint64_t kOwn = 1;
constexpr uint64_t kOwnWrite = 2;
uint64_t own_cookie(uint32_t vdisk, bool write) {
  return uint64_t{vdisk} << 2 | (write ? kOwnWrite : 0) | kOwn;
}

}  // namespace

AtomicFacility::~AtomicFacility() = default;

void AtomicFacility::submit(IoRequestPtr request) {
  const IoOp op = request->op;
  if (!read_modify_write(op) && !writes(op)) return lower_.submit(std::move(request));
  if (!vols_.empty()) {
    auto it = vols_.find(request->volume);
    if (it != vols_.end()) {  // a compare-and-write of its vdisk is under way: after it
      ++stats_.waited;
      it->second.waiting.push_back(std::move(request));
      return;
    }
  }
  if (!read_modify_write(op)) return pass_write(std::move(request));
  const uint32_t vdisk = request->volume;
  if (!begin(vdisk, vols_[vdisk], std::move(request))) vols_.erase(vdisk);
}

void AtomicFacility::pass_write(IoRequestPtr request) {
  ++current_writes_;
  request->intercept(this, generation_ << 1);
  lower_.submit(std::move(request));
}

// False if it could not begin (it is completed, failed); else it is under
// way, and may even be done already (the layers below may complete at
// once): the caller must not touch `v` again.
bool AtomicFacility::begin(uint32_t vdisk, Vol& v, IoRequestPtr request) {
  IoRequest& r = *request;
  ++(r.op == IoOp::or_write ? stats_.or_writes : stats_.compare_and_writes);
  if (r.length == 0 || !r.buffer ||
      r.buffer_offset + data_out_bytes(r.op, r.length) > r.buffer->size()) {
    complete(std::move(request), EINVAL);
    return false;
  }
  v.caw = std::make_unique<Caw>();
  v.caw->request = std::move(request);
  // The writes sent so far must be done before the range is read; those
  // sent from now on to other vdisks need not be.
  v.caw->waits_for = generation_;
  older_.push_back(current_writes_);
  current_writes_ = 0;
  ++generation_;
  forget_done();
  maybe_run(vdisk);
  return true;
}

// Earlier generations all done are forgotten.
void AtomicFacility::forget_done() {
  while (!older_.empty() && older_.front() == 0) {
    older_.pop_front();
    ++base_;
  }
}

bool AtomicFacility::drained(uint64_t generation) const {
  if (generation >= generation_) return current_writes_ == 0 && older_.empty();
  for (uint64_t g = base_; g <= generation && g - base_ < older_.size(); ++g)
    if (older_[g - base_] != 0) return false;
  return true;
}

void AtomicFacility::maybe_run(uint32_t vdisk) {
  auto it = vols_.find(vdisk);
  if (it == vols_.end() || !it->second.caw) return;
  Caw& c = *it->second.caw;
  if (c.running || !drained(c.waits_for)) return;
  c.running = true;
  IoRequest& r = *c.request;
  c.medium = Buffer::allocate(r.length);
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = vdisk;
  read->offset = r.offset;
  read->length = r.length;
  read->buffer = c.medium;
  read->client = this;
  read->cookie = own_cookie(vdisk, false);
  lower_.submit(std::move(read));
}

void AtomicFacility::io_done(IoRequestPtr request) {
  const uint64_t cookie = request->cookie;
  if (!(cookie & kOwn)) {  // a host's write, counted in its generation
    request->restore();
    write_completed(cookie >> 1);
    IoClient* client = request->client;
    client->io_done(std::move(request));
    return;
  }
  const auto vdisk = static_cast<uint32_t>(cookie >> 2);
  if (cookie & kOwnWrite) return write_done(vdisk, std::move(request));
  read_done(vdisk, std::move(request));
}

void AtomicFacility::write_completed(uint64_t generation) {
  if (generation == generation_) {  // the usual case: no compare-and-write waits for it
    --current_writes_;
    return;
  }
  if (generation < base_ || generation - base_ >= older_.size()) return;  // (cannot be)
  --older_[generation - base_];
  forget_done();
  if (vols_.empty()) return;
  std::vector<uint32_t> ready;
  for (auto& [vdisk, v] : vols_)
    if (v.caw && !v.caw->running && drained(v.caw->waits_for)) ready.push_back(vdisk);
  for (uint32_t vdisk : ready) maybe_run(vdisk);
}

void AtomicFacility::read_done(uint32_t vdisk, IoRequestPtr read) {
  Caw& c = *vols_.at(vdisk).caw;
  if (read->status != 0) return finish(vdisk, read->status);
  IoRequest& r = *c.request;
  if (r.op == IoOp::or_write) return or_into_medium(vdisk, c);
  // The expected data, then the medium: compared a piece at a time.
  std::vector<char> expected(r.length), medium(r.length);
  r.buffer->copy_out(r.buffer_offset, r.length, expected.data());
  c.medium->copy_out(0, r.length, medium.data());
  c.medium.reset();
  if (std::memcmp(expected.data(), medium.data(), r.length) != 0) {
    ++stats_.miscompares;
    r.miscompare_at = static_cast<uint64_t>(
        std::mismatch(expected.begin(), expected.end(), medium.begin()).first - expected.begin());
    return finish(vdisk, EILSEQ);
  }
  write_range(vdisk, r, r.buffer, r.buffer_offset + r.length);
}

// The request's range written (with its FUA) from `data` at `at`: the
// second half of a compare-and-write's, an or-write's result.
void AtomicFacility::write_range(uint32_t vdisk, const IoRequest& r, BufferRef data,
                                 uint64_t at) {
  IoRequestPtr write = make_request();
  write->op = IoOp::write;
  write->flags = r.flags & io_flags::fua;
  write->volume = vdisk;
  write->offset = r.offset;
  write->length = r.length;
  write->buffer = std::move(data);
  write->buffer_offset = at;
  write->client = this;
  write->cookie = own_cookie(vdisk, true);
  lower_.submit(std::move(write));
}

// An or-write: its data ORed into what the range holds (in the buffer
// read into), written back with its FUA.
void AtomicFacility::or_into_medium(uint32_t vdisk, Caw& c) {
  IoRequest& r = *c.request;
  std::vector<uint8_t> data(r.length), medium(r.length);
  r.buffer->copy_out(r.buffer_offset, r.length, data.data());
  c.medium->copy_out(0, r.length, medium.data());
  for (uint64_t i = 0; i < r.length; ++i) medium[i] |= data[i];
  c.medium->copy_in(0, r.length, medium.data());
  write_range(vdisk, r, std::move(c.medium), 0);
}

void AtomicFacility::write_done(uint32_t vdisk, IoRequestPtr write) {
  finish(vdisk, write->status);
}

// The compare-and-write is done: it completes, and what waited for it
// goes on in its order, up to the next compare-and-write of the vdisk.
void AtomicFacility::finish(uint32_t vdisk, int status) {
  Vol& v = vols_.at(vdisk);
  IoRequestPtr done = std::move(v.caw->request);
  v.caw.reset();
  complete(std::move(done), status);
  while (!v.waiting.empty()) {
    IoRequestPtr next = std::move(v.waiting.front());
    v.waiting.pop_front();
    if (!read_modify_write(next->op)) {
      pass_write(std::move(next));
      continue;
    }
    if (begin(vdisk, v, std::move(next))) return;  // the rest waits for it
  }
  vols_.erase(vdisk);
}

nlohmann::json AtomicFacility::inspect() const {
  uint64_t in_flight = current_writes_;
  for (uint64_t n : older_) in_flight += n;
  return {{"compare_and_writes", stats_.compare_and_writes},
          {"or_writes", stats_.or_writes},
          {"miscompares", stats_.miscompares},
          {"waited", stats_.waited},
          {"writes_in_flight", in_flight},
          {"generations", older_.size() + 1},
          {"vdisks_held", vols_.size()}};
}

}  // namespace sve

// The atomic facility (atomic/atomic_facility.hpp): COMPARE AND WRITE at
// the vdisk's owner, atomic against every other write of its vdisk. The
// layer below is a memory disk whose requests the test completes when it
// chooses, so each ordering is exact: a write in flight when a
// compare-and-write arrives is done before the range is read; writes that
// come after it wait until it is done, in their order; other vdisks and
// reads are not held.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "atomic/atomic_facility.hpp"

using namespace sve;

namespace {

constexpr uint64_t kDisk = 64 * 1024;

// Below the facility: a memory disk per vdisk; requests wait until run().
struct MemoryBelow final : IoServer {
  std::map<uint32_t, std::string> disks;
  std::vector<IoRequestPtr> held;
  void submit(IoRequestPtr r) override { held.push_back(std::move(r)); }
  std::string& disk(uint32_t vdisk) {
    std::string& d = disks[vdisk];
    if (d.empty()) d.assign(kDisk, '\0');
    return d;
  }
  // Serves the i-th held request and completes it.
  void run(size_t i) {
    IoRequestPtr r = std::move(held.at(i));
    held.erase(held.begin() + static_cast<long>(i));
    std::string& d = disk(r->volume);
    if (r->op == IoOp::read) r->buffer->copy_in(r->buffer_offset, r->length, d.data() + r->offset);
    if (r->op == IoOp::write) r->buffer->copy_out(r->buffer_offset, r->length, d.data() + r->offset);
    r->status = 0;
    IoClient* client = r->client;
    client->io_done(std::move(r));
  }
  void run_all() {
    while (!held.empty()) run(0);
  }
};

struct Host final : IoClient {
  std::vector<IoRequestPtr> done;
  void io_done(IoRequestPtr r) override { done.push_back(std::move(r)); }
};

IoRequestPtr write(Host& host, uint32_t vdisk, uint64_t offset, const std::string& data) {
  IoRequestPtr r = make_request();
  r->op = IoOp::write;
  r->volume = vdisk;
  r->offset = offset;
  r->length = data.size();
  r->buffer = Buffer::allocate(data.size());
  r->buffer->copy_in(0, data.size(), data.data());
  r->client = &host;
  return r;
}

IoRequestPtr compare_and_write(Host& host, uint32_t vdisk, uint64_t offset,
                               const std::string& expected, const std::string& data) {
  IoRequestPtr r = write(host, vdisk, offset, expected + data);
  r->op = IoOp::compare_and_write;
  r->length = expected.size();
  return r;
}

}  // namespace

TEST_CASE("compare-and-write writes only where the range holds what it expects", "[atomic]") {
  MemoryBelow below;
  AtomicFacility atomic(below);
  Host host;
  below.disk(1).replace(512, 4, "AAAA");
  atomic.submit(compare_and_write(host, 1, 512, "AAAA", "BBBB"));
  below.run_all();
  REQUIRE(host.done.size() == 1);
  CHECK(host.done[0]->status == 0);
  CHECK(below.disk(1).substr(512, 4) == "BBBB");
  atomic.submit(compare_and_write(host, 1, 512, "BBAB", "CCCC"));  // holds BBBB now
  below.run_all();
  REQUIRE(host.done.size() == 2);
  CHECK(host.done[1]->status == EILSEQ);
  CHECK(host.done[1]->miscompare_at == 2);  // the first byte that differs
  CHECK(below.disk(1).substr(512, 4) == "BBBB");
  CHECK(atomic.stats().miscompares == 1);
  // Its buffer must hold both halves.
  IoRequestPtr short_one = compare_and_write(host, 1, 0, "AA", "B");
  atomic.submit(std::move(short_one));
  REQUIRE(host.done.size() == 3);
  CHECK(host.done[2]->status == EINVAL);
  CHECK(below.held.empty());
  CHECK(atomic.inspect()["vdisks_held"] == 0);
}

TEST_CASE("compare-and-write is atomic against the writes around it", "[atomic]") {
  MemoryBelow below;
  AtomicFacility atomic(below);
  Host host;
  below.disk(1).replace(0, 4, "AAAA");
  // A write of the range in flight when the compare-and-write comes.
  atomic.submit(write(host, 1, 0, "XXXX"));
  REQUIRE(below.held.size() == 1);
  atomic.submit(compare_and_write(host, 1, 0, "XXXX", "CCCC"));
  CHECK(below.held.size() == 1);  // its read waits for that write
  // Meanwhile: a later write of the vdisk waits; another vdisk's write and
  // a read pass.
  atomic.submit(write(host, 1, 0, "LATE"));
  atomic.submit(write(host, 2, 0, "ELSE"));
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = 1;
  read->length = 4;
  read->buffer = Buffer::allocate(4);
  read->client = &host;
  atomic.submit(std::move(read));
  REQUIRE(below.held.size() == 3);
  CHECK(below.held[1]->volume == 2);
  CHECK(below.held[2]->op == IoOp::read);
  below.run(2);
  below.run(1);  // the other vdisk's write: not one the compare-and-write waits for
  CHECK(below.held.size() == 1);
  below.run(0);  // the earlier write lands: now the range is read
  REQUIRE(below.held.size() == 1);
  CHECK(below.held[0]->op == IoOp::read);
  below.run(0);
  REQUIRE(below.held.size() == 1);  // equal: its write
  CHECK(below.held[0]->op == IoOp::write);
  CHECK(below.held[0]->volume == 1);
  below.run(0);
  // Done: then the write that waited.
  REQUIRE(below.held.size() == 1);
  below.run(0);
  CHECK(below.disk(1).substr(0, 4) == "LATE");
  REQUIRE(host.done.size() == 5);
  int good_caw = 0;
  for (auto& r : host.done)
    if (r->op == IoOp::compare_and_write && r->status == 0) ++good_caw;
  CHECK(good_caw == 1);
  CHECK(atomic.stats().waited == 1);
  CHECK(atomic.inspect()["writes_in_flight"] == 0);
}

TEST_CASE("compare-and-writes of one vdisk run one at a time, in order with its writes",
          "[atomic]") {
  MemoryBelow below;
  AtomicFacility atomic(below);
  Host host;
  below.disk(3).replace(0, 2, "00");
  atomic.submit(compare_and_write(host, 3, 0, "00", "11"));
  atomic.submit(write(host, 3, 0, "22"));
  atomic.submit(compare_and_write(host, 3, 0, "22", "33"));
  atomic.submit(compare_and_write(host, 3, 0, "11", "44"));  // sees 33: refused
  below.run_all();
  REQUIRE(host.done.size() == 4);
  CHECK(host.done[0]->status == 0);
  CHECK(host.done[1]->status == 0);
  CHECK(host.done[2]->status == 0);
  CHECK(host.done[3]->status == EILSEQ);
  CHECK(below.disk(3).substr(0, 2) == "33");
  // Many compare-and-writes with no writes between: no generations pile up.
  for (int i = 0; i < 100; ++i) {
    atomic.submit(compare_and_write(host, 3, 0, "33", "33"));
    below.run_all();
  }
  CHECK(atomic.inspect()["generations"] == 1);
  CHECK(atomic.inspect()["vdisks_held"] == 0);
}

// ORWRITE: the range read, the data ORed in, the result written, with no
// write of the vdisk between (one that comes meanwhile waits, and then
// lands on top; one in flight before is done before the read).
TEST_CASE("or-write ORs its data into the range with no write between", "[atomic]") {
  MemoryBelow below;
  AtomicFacility atomic(below);
  Host host;
  below.disk(2).replace(0, 4, std::string("\x01\x02\x04\x08", 4));
  atomic.submit(write(host, 2, 4, "zz"));  // in flight when the or-write comes
  IoRequestPtr ored = write(host, 2, 0, std::string("\x10\x20\x40\x80", 4));
  ored->op = IoOp::or_write;
  ored->flags = io_flags::fua;
  atomic.submit(std::move(ored));
  atomic.submit(write(host, 2, 1, "Q"));  // after it: waits
  REQUIRE(below.held.size() == 1);        // the or-write's read waits for the write in flight
  below.run(0);
  REQUIRE(below.held.size() == 1);
  CHECK(below.held[0]->op == IoOp::read);
  below.run(0);
  REQUIRE(below.held.size() == 1);
  CHECK(below.held[0]->op == IoOp::write);
  CHECK(below.held[0]->flags == io_flags::fua);
  below.run(0);  // the or-write's write: the waiting write goes down only now
  REQUIRE(below.held.size() == 1);
  below.run_all();
  REQUIRE(host.done.size() == 3);
  for (auto& r : host.done) CHECK(r->status == 0);
  CHECK(host.done[1]->op == IoOp::or_write);
  CHECK(below.disk(2).substr(0, 6) == std::string("\x11Q\x44\x88zz", 6));
  CHECK(atomic.stats().or_writes == 1);
  CHECK(atomic.stats().compare_and_writes == 0);
  // Its buffer must hold its data.
  IoRequestPtr short_one = write(host, 2, 0, "AB");
  short_one->op = IoOp::or_write;
  short_one->length = 3;
  atomic.submit(std::move(short_one));
  REQUIRE(host.done.size() == 4);
  CHECK(host.done[3]->status == EINVAL);
  CHECK(atomic.inspect()["vdisks_held"] == 0);
}

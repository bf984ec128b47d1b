// The facility stack without the actor runtime: a dummy front end, the
// virtualization facility and the io_uring back end on a file, as the paper's
// test scaffolding describes. The test thread plays the core's reactor: it
// reaps the ring, and completions run on it.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "backend/fault_facility.hpp"
#include "io/service_gate.hpp"
#include "backend/backend_facility.hpp"
#include "io/interconnect/forward_facility.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/size.hpp"
#include "virt/virtualizer.hpp"

using namespace sve;

namespace {

// The dummy front end: keeps the completed request.
struct FrontEnd final : IoClient {
  void io_done(IoRequestPtr r) override { done = std::move(r); }
  IoRequestPtr done;
};

// A map with vdisk 5 of four 1 MiB extents on mdisk 1 at `at`.
std::shared_ptr<VirtMap> four_extents(std::vector<PhysicalExtent> at) {
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = 5;
  v.name = "v";
  v.size_bytes = 4 * MiB;
  v.extent_bytes = MiB;
  v.extents = std::move(at);
  v.mdisks = {1};
  map->volumes[5] = v;
  return map;
}

struct Stack {
  std::string path;
  std::shared_ptr<BlockDevice> device;
  std::unique_ptr<UringEngine> engine;
  std::unique_ptr<BackendFacility> backend;
  FrontEnd front_end;
  std::unique_ptr<Virtualizer> virt;

  Stack() {
    char tmpl[] = "/tmp/sve-stack-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 * MiB) == 0);
    ::close(fd);
    path = tmpl;
    device = BlockDevice::open(path).value();
    engine = std::move(UringEngine::create(64).value());
    backend = std::make_unique<BackendFacility>(*engine);
    backend->attach(1, device);
    virt = std::make_unique<Virtualizer>(*backend);
    // vdisk 5: four 1 MiB extents, out of order on the file.
    virt->set_map(four_extents({{1, 3 * MiB}, {1, 1 * MiB}, {1, 6 * MiB}, {1, 2 * MiB}}));
  }
  ~Stack() { std::filesystem::remove(path); }

  IoRequestPtr run(IoOp op, uint64_t offset, uint64_t length, BufferRef buf = nullptr,
                   uint32_t volume = 5, uint32_t flags = 0) {
    auto r = make_request();
    r->op = op;
    r->volume = volume;
    r->offset = offset;
    r->length = length;
    r->flags = flags;
    r->buffer = buf ? buf : Buffer::allocate(length ? length : 1);
    r->client = &front_end;
    virt->submit(r);
    // This thread is the core: it reaps the ring until the request is back.
    while (!front_end.done) engine->wait();
    return std::move(front_end.done);
  }

  std::vector<char> read_file(uint64_t offset, uint64_t length) {
    std::vector<char> out(length);
    REQUIRE(device->read_at(out.data(), length, offset));
    return out;
  }
};

BufferRef pattern(uint64_t length, char seed) {
  auto b = Buffer::allocate(length);
  for (uint64_t i = 0; i < length; ++i) b->data()[i] = static_cast<char>(seed + i % 251);
  return b;
}

}  // namespace

TEST_CASE("a write across extents lands on the mapped file offsets and reads back") {
  Stack s;
  const uint64_t offset = MiB - 4096, length = MiB + 8192;  // extents 0, 1 and 2
  auto data = pattern(length, 7);
  auto w = s.run(IoOp::write, offset, length, data);
  REQUIRE(w->status == 0);
  CHECK(s.virt->stats().split_requests == 1);
  // Extent 0 lives at 3 MiB, extent 1 at 1 MiB, extent 2 at 6 MiB.
  CHECK(s.read_file(3 * MiB + MiB - 4096, 4096) ==
        std::vector<char>(data->data(), data->data() + 4096));
  CHECK(s.read_file(1 * MiB, MiB) ==
        std::vector<char>(data->data() + 4096, data->data() + 4096 + MiB));
  CHECK(s.read_file(6 * MiB, 4096) ==
        std::vector<char>(data->data() + 4096 + MiB, data->data() + length));
  auto r = s.run(IoOp::read, offset, length);
  REQUIRE(r->status == 0);
  CHECK(std::memcmp(r->buffer->data(), data->data(), length) == 0);
}

TEST_CASE("the pieces of a split request share the caller's buffer") {
  Stack s;
  auto data = pattern(2 * MiB, 1);
  auto w = s.run(IoOp::write, MiB / 2, 2 * MiB, data);
  REQUIRE(w->status == 0);
  // Only the test and the finished request hold the buffer: no piece kept
  // a reference, and none made a copy of its own.
  CHECK(data->use_count() == 2);
}

TEST_CASE("unaligned requests take the buffered path and stay correct") {
  Stack s;
  auto data = pattern(1000, 3);
  REQUIRE(s.run(IoOp::write, 12345, 1000, data)->status == 0);
  auto r = s.run(IoOp::read, 12345, 1000);
  REQUIRE(r->status == 0);
  CHECK(std::memcmp(r->buffer->data(), data->data(), 1000) == 0);
  CHECK(s.backend->stats().buffered_fallbacks >= 2);
}

TEST_CASE("errors come back as statuses") {
  Stack s;
  CHECK(s.run(IoOp::read, 4 * MiB - 512, 1024)->status == ERANGE);
  CHECK(s.run(IoOp::write, 4 * MiB, 512)->status == ERANGE);
  CHECK(s.run(IoOp::read, 0, 512, nullptr, /*volume=*/99)->status == ENODEV);
  SECTION("an mdisk the back end does not know fails with EIO") {
    s.backend->detach(1);
    CHECK(s.run(IoOp::read, 0, 4096)->status == EIO);
  }
}

TEST_CASE("flush, FUA, trim and write-zeroes reach the device") {
  Stack s;
  auto data = pattern(2 * MiB, 9);
  REQUIRE(s.run(IoOp::write, 0, 2 * MiB, data, 5, io_flags::fua)->status == 0);
  REQUIRE(s.run(IoOp::flush, 0, 0)->status == 0);
  REQUIRE(s.run(IoOp::write_zeroes, 4096, 8192, nullptr, 5, io_flags::no_hole)->status == 0);
  REQUIRE(s.run(IoOp::trim, MiB, 65536, nullptr, 5, io_flags::fua)->status == 0);
  auto r = s.run(IoOp::read, 0, 2 * MiB);
  REQUIRE(r->status == 0);
  std::vector<char> zeros(65536, 0);
  CHECK(std::memcmp(r->buffer->data() + 4096, zeros.data(), 8192) == 0);
  CHECK(std::memcmp(r->buffer->data() + MiB, zeros.data(), 65536) == 0);
  CHECK(std::memcmp(r->buffer->data(), data->data(), 4096) == 0);
  CHECK(std::memcmp(r->buffer->data() + 12288, data->data() + 12288, 4096) == 0);
}

// offset + length past 2^64 wraps to a small number that fits the vdisk: it
// must be refused before it is cut into pieces.
TEST_CASE("a range that wraps past 2^64 is refused") {
  Stack s;
  CHECK(s.run(IoOp::read, UINT64_MAX - 4095, 4096)->status == ERANGE);
  CHECK(s.run(IoOp::write, UINT64_MAX - 4095, 8192)->status == ERANGE);
  CHECK(s.run(IoOp::write_zeroes, UINT64_MAX - 511, 1024)->status == ERANGE);
  CHECK(s.run(IoOp::read, uint64_t{1} << 63, 512)->status == ERANGE);
}

// The mdisk fault facility (the chaos monkey's, inserted only on a node
// started with --enable-chaos): a failed mdisk answers EIO, a stalled one
// holds its requests until the stall ends, the others pass straight down.
namespace {

struct Below final : IoServer {
  std::vector<IoRequestPtr> got;
  void submit(IoRequestPtr r) override { got.push_back(std::move(r)); }
};

}  // namespace

TEST_CASE("the fault facility fails, holds and passes requests as the fault table says",
          "[stack]") {
  Below below;
  auto table = std::make_shared<MdiskFaults>();
  MdiskFaultFacility faults(below, table);
  FrontEnd front_end;
  auto request = [&](uint32_t mdisk) {
    auto r = make_request();
    r->op = IoOp::read;
    r->volume = mdisk;
    r->length = 4096;
    r->client = &front_end;
    return r;
  };
  uint64_t now = monotonic_ms();
  table->set(1, MdiskFaults::Kind::error, now + 60'000);
  table->set(2, MdiskFaults::Kind::stall, now + 50);
  faults.submit(request(1));
  REQUIRE(front_end.done);
  CHECK(front_end.done->status == EIO);
  faults.submit(request(2));
  faults.submit(request(3));
  CHECK(below.got.size() == 1);  // mdisk 3 went on; mdisk 2's waits
  CHECK(below.got[0]->volume == 3);
  faults.tick(now + 10);
  CHECK(below.got.size() == 1);
  CHECK(faults.inspect()["held"] == 1);
  faults.tick(now + 60);  // the stall is over
  REQUIRE(below.got.size() == 2);
  CHECK(below.got[1]->volume == 2);
  CHECK(faults.inspect()["held"] == 0);
  CHECK(faults.inspect()["failed"] == 1);
}

// Between generations (a node joined or left) a cluster node's gate closes
// for a moment, for a lease and more when a node died: a host's requests
// wait at the top of the stack, in order, and go on once the node serves
// again (the gate opening, seen at the next tick, or new routes); those
// that wait longer than the hold fail with EIO, having reached nothing.
TEST_CASE("the forward facility holds requests while its node is between generations",
          "[stack]") {
  Below local, remote;
  struct Done final : IoClient {
    std::vector<IoRequestPtr> got;
    void io_done(IoRequestPtr r) override { got.push_back(std::move(r)); }
  } host, return_port;
  ServiceGate gate;
  ForwardFacility forward(local, &remote, &return_port, nullptr, &gate, 1000);
  CHECK(forward.tick_ms() > 0);
  auto routes = [](bool serving) {
    auto t = std::make_shared<RouteTable>();
    t->self = 1;
    t->serving = serving;
    t->vdisks[7].owner = 1;  // this node's
    t->vdisks[8].owner = 2;  // another's: to the interconnect
    t->vdisks[9].owner = 0;  // its group is offline
    return t;
  };
  uint64_t next = 1;
  auto submit = [&](uint32_t vdisk) {
    auto r = make_request();
    r->op = IoOp::write;
    r->volume = vdisk;
    r->offset = 4096 * next++;
    r->length = 4096;
    r->client = &host;
    forward.submit(std::move(r));
  };
  gate.open_until(ServiceGate::kForever);
  forward.set_view(FacilityView{nullptr, routes(true)});
  submit(7);
  REQUIRE(local.got.size() == 1);

  // The gate closes (a new generation forms): held, in order.
  gate.open_until(0);
  submit(7);
  submit(8);
  submit(7);
  uint64_t now = monotonic_ms();
  forward.tick(now);
  CHECK(local.got.size() == 1);
  CHECK(remote.got.empty());
  CHECK(host.got.empty());
  CHECK(forward.holding() == 3);
  // It opens: the next tick sends them on, in the order they came.
  gate.open_until(ServiceGate::kForever);
  forward.tick(now + 10);
  REQUIRE(local.got.size() == 3);
  CHECK(local.got[1]->offset == 4096 * 2);
  CHECK(local.got[2]->offset == 4096 * 4);
  REQUIRE(remote.got.size() == 1);
  CHECK(remote.got[0]->volume == 8);
  CHECK(host.got.empty());

  // Routes that do not serve (no lease, as the cluster actor tells it):
  // held until routes that serve come; an offline group fails at once then.
  forward.set_view(FacilityView{nullptr, routes(false)});
  submit(7);
  submit(9);
  CHECK(forward.holding() == 2);
  forward.set_view(FacilityView{nullptr, routes(true)});
  CHECK(forward.holding() == 0);
  CHECK(local.got.size() == 4);
  REQUIRE(host.got.size() == 1);
  CHECK((host.got[0]->volume == 9 && host.got[0]->status == EIO));

  // A node that stays out (it lost its cluster): EIO once the hold is over,
  // and nothing reached the stack.
  gate.open_until(0);
  now = monotonic_ms();
  submit(7);
  forward.tick(now + 999);
  CHECK(host.got.size() == 1);
  forward.tick(now + 2000);
  REQUIRE(host.got.size() == 2);
  CHECK(host.got[1]->status == EIO);
  CHECK(local.got.size() == 4);
  CHECK(forward.stats().held == 6);
  CHECK(forward.stats().held_failed == 1);

  // Without a hold (sve-bench, the data-path simulator): EIO at once.
  ForwardFacility strict(local, &remote, &return_port, nullptr, &gate, 0);
  CHECK(strict.tick_ms() == 0);
  strict.set_view(FacilityView{nullptr, routes(true)});
  auto r = make_request();
  r->volume = 7;
  r->client = &host;
  strict.submit(std::move(r));
  REQUIRE(host.got.size() == 3);
  CHECK(host.got[2]->status == EIO);
}

// A node whose lease ran out changes nothing on its back end: a write it
// still had queued (behind a stalled device, a destage) could land over
// what the node that took its vdisks over wrote since. Reads go on; a node
// never granted a lease, and a new generation's moment of closed gate
// before the lease runs out, are not fenced.
TEST_CASE("the back end refuses changes once the node's lease has run out", "[stack]") {
  Stack s;
  ServiceGate lease;
  s.backend->set_fence(&lease);
  auto data = pattern(4096, 'a');
  CHECK(s.run(IoOp::write, 0, 4096, data)->status == 0);  // never leased: not fenced
  lease.open_until(monotonic_ms() + 60'000);
  lease.open_until(0);  // a new generation: closed for a moment, the lease holds
  CHECK(s.run(IoOp::write, 4096, 4096, pattern(4096, 'b'))->status == 0);
  lease.open_until(monotonic_ms() - 1);  // (as if it had run out)
  CHECK(s.run(IoOp::write, 0, 4096, pattern(4096, 'c'))->status == 0);  // the later lease counts
  ServiceGate expired;
  expired.open_until(monotonic_ms() + 20);
  s.backend->set_fence(&expired);
  while (expired.may_write_back_end())  // (reads go on meanwhile, and after)
    CHECK(s.run(IoOp::read, 0, 4096)->status == 0);
  for (IoOp op : {IoOp::write, IoOp::write_zeroes, IoOp::trim})
    CHECK(s.run(op, 0, 4096, pattern(4096, 'd'))->status == EIO);
  CHECK(s.backend->stats().fenced == 3);
  auto back = s.run(IoOp::read, 0, 4096);
  REQUIRE(back->status == 0);
  CHECK(std::memcmp(back->buffer->data(), pattern(4096, 'c')->data(), 4096) == 0);
  CHECK(s.run(IoOp::flush, 0, 0)->status == 0);
}

// How long the gate has been closed tells a node between generations
// (closed for a moment) from one whose lease ran out for good (the iSCSI
// port's transitioning and unavailable): counted from when it closed, or
// from the lease that ran out before it was closed, never from a later
// close.
TEST_CASE("the gate knows how long it has been closed", "[stack]") {
  ServiceGate gate;
  CHECK(gate.closed_for_ms() == 0);  // alone: open for ever
  gate.open_until(monotonic_ms() + 60'000);
  CHECK(gate.closed_for_ms() == 0);
  uint64_t before = monotonic_ms();
  gate.open_until(0);
  CHECK(gate.closed_for_ms() <= monotonic_ms() - before);
  gate.open_until(monotonic_ms() + 60'000);
  CHECK(gate.closed_for_ms() == 0);
  gate.open_until(monotonic_ms() - 5'000);  // a lease that ran out 5 s ago
  CHECK(gate.closed_for_ms() >= 5'000);
  gate.open_until(0);  // closed since the lease ran out
  CHECK(gate.closed_for_ms() >= 5'000);
  gate.open_until(0);
  CHECK(gate.closed_for_ms() >= 5'000);
  CHECK(gate.closed_for_ms() < 60'000);
}

// A new I/O process: its predecessor's writes may still be in the device
// queue, and one landing after this process wrote the same blocks would
// undo that write (kRestartQuietMs). Its changes wait until then, in order;
// reads and flushes go on.
TEST_CASE("a new I/O process holds its changes to the back end for a while", "[stack]") {
  Stack s;
  CHECK(s.run(IoOp::write, 0, 4096, pattern(4096, 'a'))->status == 0);
  uint64_t now = monotonic_ms();
  s.backend->hold_changes_until(now + 60'000);
  CHECK(s.run(IoOp::read, 0, 4096)->status == 0);
  CHECK(s.run(IoOp::flush, 0, 0)->status == 0);
  uint64_t submitted = s.backend->stats().submitted;
  auto w = make_request();
  w->op = IoOp::write;
  w->volume = 5;
  w->offset = 0;
  w->length = 4096;
  w->buffer = pattern(4096, 'b');
  w->client = &s.front_end;
  s.virt->submit(w);
  CHECK_FALSE(s.front_end.done);
  CHECK(s.backend->stats().held == 1);
  s.backend->tick(now + 10);  // not yet
  CHECK(s.backend->stats().submitted == submitted);
  CHECK_FALSE(s.front_end.done);
  s.backend->tick(now + 60'000);
  while (!s.front_end.done) s.engine->wait();
  CHECK(s.front_end.done->status == 0);
  s.front_end.done.reset();
  auto back = s.run(IoOp::read, 0, 4096);
  REQUIRE(back->status == 0);
  CHECK(std::memcmp(back->buffer->data(), pattern(4096, 'b')->data(), 4096) == 0);
  CHECK(s.run(IoOp::write, 4096, 4096, pattern(4096, 'c'))->status == 0);  // no longer held
  CHECK(s.backend->stats().held == 1);
}

// Facilities call each other directly; a completion that happens inside a
// submit (here every one: a memory mdisk completes at once) waits in the
// core's completion queue until the submit has returned. Without that, the
// facility above would be re-entered mid-submit, and a client that
// resubmits from its completion would recurse without bound.
namespace {

struct ReentryProbe final : IoServer, IoClient {
  IoServer* lower = nullptr;
  bool in_submit = false;
  uint64_t reentered = 0;
  void submit(IoRequestPtr r) override {
    r->intercept(this, 0);
    in_submit = true;
    lower->submit(std::move(r));
    in_submit = false;
  }
  void io_done(IoRequestPtr r) override {
    if (in_submit) ++reentered;
    r->restore();
    IoClient* client = r->client;
    client->io_done(std::move(r));
  }
};

struct Resubmitter final : IoClient {
  IoServer* top = nullptr;
  uint64_t left = 0, done = 0;
  void io_done(IoRequestPtr r) override {
    ++done;
    if (left == 0) return;
    --left;
    r->offset = (r->offset + 4096) % (1 << 20);
    top->submit(std::move(r));
  }
};

}  // namespace

TEST_CASE("a completion inside a submit waits for the submit to return") {
  auto engine = std::move(UringEngine::create(64).value());
  BackendFacility backend(*engine);
  backend.attach(1, BlockDevice::open("memory:4M").value());
  Virtualizer virt(backend);
  virt.set_map(four_extents({{1, 3 * MiB}, {1, 1 * MiB}, {1, 0}, {1, 2 * MiB}}));
  ReentryProbe probe;
  probe.lower = &virt;

  CompletionQueue queue;  // this thread plays a reactor
  CompletionQueue::set_current(&queue);
  Resubmitter client;
  client.top = &probe;
  client.left = 200'000;  // deep enough to overflow the stack if it recursed
  for (int i = 0; i < 4; ++i) {
    auto r = make_request();
    r->op = IoOp::write;
    r->volume = 5;
    r->offset = static_cast<uint64_t>(i) * 8192;
    r->length = 8192;  // some cross an extent boundary: two pieces
    r->buffer = Buffer::allocate(8192);
    r->client = &client;
    probe.submit(std::move(r));
  }
  while (!queue.empty()) queue.run();
  CompletionQueue::set_current(nullptr);
  CHECK(client.done == 200'004);
  CHECK(probe.reentered == 0);
}

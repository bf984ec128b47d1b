// Buffers from a core's pool: page runs from the buddy allocator,
// scatter-gather for large or fragmented buffers, reference counts shared by
// the pieces of a split request, and no copies anywhere in the stack.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "io/buffer/buffer_pool.hpp"
#include "io/request_pool.hpp"
#include "backend/backend_facility.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/size.hpp"
#include "virt/virtualizer.hpp"

using namespace sve;

TEST_CASE("the buddy allocator splits and merges page runs", "[buffer]") {
  std::vector<char> mem(1024 * PageAllocator::kPageBytes);
  PageAllocator pages(mem.data(), 1024);
  CHECK(pages.free_pages() == 1024);
  char* a = pages.allocate(0);
  char* b = pages.allocate(0);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(b - a == PageAllocator::kPageBytes);  // buddies, side by side
  char* big = pages.allocate(PageAllocator::kMaxOrder);
  REQUIRE(big);
  CHECK((big - mem.data()) % (256 * PageAllocator::kPageBytes) == 0);
  CHECK(pages.free_pages() == 1024 - 2 - 256);
  pages.free(a, 0);
  pages.free(b, 0);
  pages.free(big, PageAllocator::kMaxOrder);
  CHECK(pages.free_pages() == 1024);
  CHECK(pages.largest_free_order() == static_cast<int>(PageAllocator::kMaxOrder));
  // Everything merged back: four 1 MiB runs can be taken again.
  for (int i = 0; i < 4; ++i) CHECK(pages.allocate(PageAllocator::kMaxOrder));
  CHECK(pages.allocate(0) == nullptr);
}

TEST_CASE("a pooled buffer is charged to its account until its last reference", "[buffer]") {
  auto pool = std::move(BufferPool::create("test", 4 * MiB).value());
  PoolAccount conn("conn", pool->root(), 0, 1024);
  uint64_t need = BufferPool::pages_for(3 * MiB + 100);
  REQUIRE(need == 769);
  REQUIRE(conn.try_acquire(need));
  BufferRef b = pool->build(conn, 3 * MiB + 100);
  REQUIRE(b);
  CHECK(b->size() == 3 * MiB + 100);
  CHECK(b->segment_count() == 4);  // three 1 MiB runs and one page
  iovec parts[8];
  // A piece that straddles two runs is two iovecs of the same memory.
  int n = b->slice(MiB - 512, 1024, parts, 8);
  REQUIRE(n == 2);
  CHECK(parts[0].iov_len == 512);
  CHECK(parts[1].iov_len == 512);
  CHECK(b->contiguous(MiB - 512, 1024) == nullptr);
  CHECK(b->contiguous(4096, 4096) == b->segment(0).data + 4096);

  BufferRef piece_ref = b;  // what a split piece holds
  CHECK(b->use_count() == 2);
  b.reset();
  CHECK(conn.used() == need);  // the piece still holds it
  piece_ref.reset();
  CHECK(conn.used() == 0);
  CHECK(pool->free_pages() == pool->total_pages());
}

TEST_CASE("fragmented memory makes a buffer of many runs, or none", "[buffer]") {
  auto pool = std::move(BufferPool::create("test", 2 * MiB).value());  // 512 pages
  PoolAccount conn("conn", pool->root(), 0, 512);
  // Hold every other page: no run longer than one page stays free.
  std::vector<BufferRef> held;
  std::vector<BufferRef> gaps;
  for (int i = 0; i < 512; ++i) {
    REQUIRE(conn.try_acquire(1));
    (i % 2 ? gaps : held).push_back(pool->build(conn, 4096));
  }
  gaps.clear();
  // 256 single pages are free: a 64-page buffer can be made of 64 runs...
  REQUIRE(conn.try_acquire(64));
  BufferRef sg = pool->build(conn, 64 * 4096);
  REQUIRE(sg);
  CHECK(sg->segment_count() == 64);
  // ...but not one that needs more segments than a buffer has.
  REQUIRE(conn.try_acquire(65));
  CHECK(pool->build(conn, 65 * 4096) == nullptr);
  conn.release(65);
  sg.reset();
  held.clear();
  CHECK(pool->free_pages() == 512);
}

namespace {

struct FrontEnd final : IoClient {
  void io_done(IoRequestPtr r) override { done = std::move(r); }
  IoRequestPtr done;
};

}  // namespace

// The whole stack below the front end on a memory mdisk: one request split
// over three extents, pooled buffer and pooled pieces. The only copy of the
// payload is the memory device's own (its DMA): exactly one per byte each
// way, straight between the device and the front end's buffer.
TEST_CASE("a request crosses the stack on pooled objects without copies", "[buffer]") {
  auto engine = std::move(UringEngine::create(64).value());
  auto device = BlockDevice::open("memory:16M").value();
  BackendFacility backend(*engine);
  backend.attach(1, device);
  auto buffers = std::move(BufferPool::create("test", 8 * MiB).value());
  REQUIRE(engine->register_buffers(buffers->region()));
  buffers->set_fixed_index(0);
  RequestPool requests("requests", 64);
  PoolAccount front("front", requests.root(), 0, 32);
  PoolAccount virt_acct("virt", requests.root(), 32, 64);
  PoolAccount front_pages("front", buffers->root(), 0, 2048);
  Virtualizer virt(backend, &requests, &virt_acct);
  auto map = std::make_shared<VirtMap>();
  VolumeLayout v;
  v.id = 7;
  v.size_bytes = 4 * MiB;
  v.extent_bytes = MiB;
  v.extents = {{1, 9 * MiB}, {1, 3 * MiB}, {1, 5 * MiB}, {1, 1 * MiB}};
  v.mdisks = {1};
  map->volumes[7] = v;
  virt.set_map(map);
  FrontEnd fe;

  auto run = [&](IoOp op, uint64_t offset, BufferRef data) {
    REQUIRE(front.try_acquire(1));
    IoRequestPtr r = requests.make(front);
    r->op = op;
    r->volume = 7;
    r->offset = offset;
    r->length = data->size();
    r->buffer = data;
    r->client = &fe;
    virt.submit(std::move(r));
    while (!fe.done) engine->wait();
    IoRequestPtr done = std::move(fe.done);
    REQUIRE(done->status == 0);
  };
  uint64_t length = 2 * MiB + 8192;
  uint64_t pages = BufferPool::pages_for(length);
  REQUIRE(front_pages.try_acquire(pages));
  BufferRef out = buffers->build(front_pages, length);
  REQUIRE(out);
  iovec parts[Buffer::kMaxSegments];
  int n = out->slice(0, length, parts, Buffer::kMaxSegments);
  for (int i = 0; i < n; ++i)
    for (size_t k = 0; k < parts[i].iov_len; ++k)
      static_cast<char*>(parts[i].iov_base)[k] = static_cast<char>((k * 7 + i) % 251);

  uint64_t copied_before = PayloadCopies::device_bytes.load();
  run(IoOp::write, MiB / 2, out);
  CHECK(out->use_count() == 1);  // the pieces let go of it
  CHECK(requests.free_count() == 64);  // every context went back
  REQUIRE(front_pages.try_acquire(pages));
  BufferRef in = buffers->build(front_pages, length);
  run(IoOp::read, MiB / 2, in);
  CHECK(PayloadCopies::device_bytes.load() - copied_before == 2 * length);
  CHECK(virt.stats().split_requests == 2);
  // The data landed where the map says: extent 0 lives at 9 MiB.
  std::vector<char> first(4096);
  REQUIRE(device->read_at(first.data(), 4096, 9 * MiB + MiB / 2));
  CHECK(std::memcmp(first.data(), out->segment(0).data, 4096) == 0);
  iovec a[Buffer::kMaxSegments], b[Buffer::kMaxSegments];
  int na = out->slice(0, length, a, Buffer::kMaxSegments);
  int nb = in->slice(0, length, b, Buffer::kMaxSegments);
  REQUIRE(na == nb);
  for (int i = 0; i < na; ++i) CHECK(std::memcmp(a[i].iov_base, b[i].iov_base, a[i].iov_len) == 0);
}

// The emulated non-volatile memory: entries survive the process that wrote
// them (a real SIGKILL), torn entries and older copies are recognised and
// dropped, released entries stay gone, and an area is never reinterpreted.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "hw/nvram/nvram.hpp"

using namespace sve;

namespace {

// A directory of its own, removed with everything in it at the end.
struct TempDir {
  std::string dir;
  TempDir() {
    char name[] = "/tmp/sve-nvram-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    dir = name;
  }
  ~TempDir() { std::filesystem::remove_all(dir); }
  std::string path() const { return dir + "/nvram"; }
};

std::vector<uint8_t> block(uint8_t fill, size_t n = 4096) { return std::vector<uint8_t>(n, fill); }

uint32_t store(Nvram& nv, uint32_t vdisk, uint64_t offset, uint64_t seq, uint8_t fill,
               uint32_t origin = 1) {
  int64_t slot = nv.allocate();
  REQUIRE(slot >= 0);
  auto data = block(fill);
  NvramEntry e{static_cast<uint32_t>(slot), origin, vdisk, offset, 4096, seq};
  REQUIRE(nv.store(static_cast<uint32_t>(slot), e, data.data()));
  return static_cast<uint32_t>(slot);
}

// Flips one byte of the file at `at`, as a torn write would leave it.
void damage(const std::string& path, off_t at) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  uint8_t b = 0;
  REQUIRE(::pread(fd, &b, 1, at) == 1);
  b ^= 0xff;
  REQUIRE(::pwrite(fd, &b, 1, at) == 1);
  ::close(fd);
}

}  // namespace

TEST_CASE("nvram entries survive the death of the process that wrote them", "[nvram]") {
  TempDir tmp;
  std::string path = tmp.path();
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto nv = Nvram::open(path, 64);
    if (!nv) std::_Exit(2);
    std::vector<uint8_t> data(4096, 0xa7);
    NvramEntry e{0, 1, 7, 8192, 4096, 42};
    int64_t slot = nv.value()->allocate();
    e.slot = static_cast<uint32_t>(slot);
    if (!nv.value()->store(e.slot, e, data.data())) std::_Exit(3);
    ::kill(::getpid(), SIGKILL);  // no destructor, no msync: the process just dies
    std::_Exit(4);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);

  auto nv = Nvram::open(path, 64);
  REQUIRE(nv);
  const auto& found = nv.value()->recovered();
  REQUIRE(found.size() == 1);
  CHECK(found[0].vdisk == 7);
  CHECK(found[0].offset == 8192);
  CHECK(found[0].seq == 42);
  CHECK(std::memcmp(nv.value()->data(found[0].slot), block(0xa7).data(), 4096) == 0);
  CHECK(nv.value()->free_slots() == 63);
}

TEST_CASE("nvram recovery keeps the newest copy of a block and drops torn entries",
          "[nvram]") {
  TempDir tmp;
  std::string path = tmp.path();
  uint32_t torn_data = 0, torn_header = 0;
  {
    auto nv = Nvram::open(path, 16);
    REQUIRE(nv);
    store(*nv.value(), 1, 0, 5, 0x11);      // older copy of block (1, 0)
    store(*nv.value(), 1, 0, 9, 0x22);      // newer copy
    store(*nv.value(), 1, 0, 3, 0x33, 2);   // the partner's mirror of the same block
    uint32_t gone = store(*nv.value(), 2, 4096, 1, 0x44);
    nv.value()->release(gone);              // destaged: never seen again
    torn_data = store(*nv.value(), 3, 0, 1, 0x55);
    torn_header = store(*nv.value(), 4, 0, 1, 0x66);
  }
  // The data of one entry and the header of another did not fully land.
  size_t table = 4096;  // 16 headers of 64 bytes round up to one page
  damage(path, static_cast<off_t>(4096 + table + size_t{torn_data} * 4096 + 100));
  damage(path, static_cast<off_t>(4096 + size_t{torn_header} * 64 + 20));

  auto nv = Nvram::open(path, 16);
  REQUIRE(nv);
  auto found = nv.value()->recovered();
  REQUIRE(found.size() == 2);
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.origin < b.origin; });
  CHECK(found[0].origin == 1);
  CHECK(found[0].seq == 9);
  CHECK(std::memcmp(nv.value()->data(found[0].slot), block(0x22).data(), 4096) == 0);
  CHECK(found[1].origin == 2);  // the mirror copy is kept apart from our own
  CHECK(found[1].seq == 3);
  CHECK(nv.value()->free_slots() == 14);

  // Reopened again, the same two, and nothing else came back.
  nv.value().reset();
  auto again = Nvram::open(path, 16);
  REQUIRE(again);
  CHECK(again.value()->recovered().size() == 2);
}

TEST_CASE("nvram refuses an area of another geometry and full or oversized stores",
          "[nvram]") {
  TempDir tmp;
  std::string path = tmp.path();
  {
    auto nv = Nvram::open(path, 2);
    REQUIRE(nv);
    store(*nv.value(), 1, 0, 1, 0x01);
    store(*nv.value(), 1, 4096, 2, 0x02);
    CHECK(nv.value()->allocate() == -1);  // full
    std::vector<uint8_t> big(8192, 0);
    CHECK_FALSE(nv.value()->store(0, NvramEntry{0, 1, 1, 0, 8192, 3}, big.data()));
    CHECK(nv.value()->flush());
  }
  auto other = Nvram::open(path, 4);
  REQUIRE_FALSE(other);
  CHECK(other.error().message.find("refusing to reinterpret") != std::string::npos);
  auto same = Nvram::open(path, 2);
  REQUIRE(same);
  CHECK(same.value()->recovered().size() == 2);
  CHECK_FALSE(Nvram::open(path + "-x", 4, 1000));  // not a multiple of 512
}

TEST_CASE("nvram: a released entry stays released after a restart", "[nvram]") {
  TempDir t;
  {
    auto nv = std::move(Nvram::open(t.path(), 8).value());
    uint32_t kept = store(*nv, 1, 0, 1, 0x11);
    uint32_t gone = store(*nv, 1, 4096, 2, 0x22);
    nv->release(gone);
    (void)kept;
  }
  auto nv = std::move(Nvram::open(t.path(), 8).value());
  REQUIRE(nv->recovered().size() == 1);
  CHECK(nv->recovered()[0].offset == 0);
  CHECK(nv->free_slots() == 7);
}

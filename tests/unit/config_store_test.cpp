#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/model_codec.hpp"
#include "cluster/state/config_store.hpp"

using namespace sve;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/sve-store-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<char> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// A store that has committed `good` as version 1 and `newer` as version 2.
ConfigStore two_versions(const fs::path& dir, const std::string& good,
                         const std::string& newer) {
  ConfigStore store(dir);
  REQUIRE(store.load());
  REQUIRE(store.save(1, bytes(good)));
  REQUIRE(store.save(2, bytes(newer)));
  return store;
}

void truncate_file(const fs::path& p, size_t keep) { fs::resize_file(p, keep); }

void flip_byte(const fs::path& p, size_t at) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(c ^ 0x5a));
}

}  // namespace

TEST_CASE("a fresh store loads as empty") {
  TempDir dir;
  ConfigStore store(dir.path);
  auto loaded = store.load();
  REQUIRE(loaded);
  CHECK_FALSE(loaded.value().has_value());
}

TEST_CASE("the newest complete copy wins and saves alternate between copies") {
  TempDir dir;
  ConfigStore store(dir.path);
  REQUIRE(store.load());
  REQUIRE(store.save(1, bytes("one")));
  REQUIRE(store.save(2, bytes("two")));
  REQUIRE(store.save(3, bytes("three")));
  ConfigStore again(dir.path);
  auto loaded = again.load();
  REQUIRE(loaded);
  REQUIRE(loaded.value());
  CHECK(loaded.value()->version == 3);
  CHECK(loaded.value()->payload == bytes("three"));
  // Version 2 is still intact in the other copy.
  REQUIRE(again.save(4, bytes("four")));
  auto after = ConfigStore(dir.path).load();
  CHECK(after.value()->version == 4);
}

TEST_CASE("a torn write of the newest copy rolls back to the previous version") {
  TempDir dir;
  ConfigStore store =
      two_versions(dir.path, "previous configuration", "new configuration being written");
  std::string newest = store.slot_path(1);
  SECTION("cut short") { truncate_file(newest, 20); }
  SECTION("a byte changed in the payload") { flip_byte(newest, 40); }
  SECTION("a byte changed in the version") { flip_byte(newest, 9); }
  auto loaded = ConfigStore(dir.path).load();
  REQUIRE(loaded);
  REQUIRE(loaded.value());
  CHECK(loaded.value()->version == 1);
  CHECK(loaded.value()->payload == bytes("previous configuration"));
}

TEST_CASE("after a rollback the next save overwrites the torn copy, not the good one") {
  TempDir dir;
  ConfigStore store = two_versions(dir.path, "good", "torn");
  truncate_file(store.slot_path(1), 10);
  ConfigStore reopened(dir.path);
  REQUIRE(reopened.load().value()->version == 1);
  REQUIRE(reopened.save(2, bytes("retry")));
  truncate_file(reopened.slot_path(1), 0);  // even if this save tears too...
  CHECK(ConfigStore(dir.path).load().value()->payload == bytes("good"));
}

TEST_CASE("two unreadable copies are refused and left untouched") {
  TempDir dir;
  {
    std::ofstream(dir.path / "config.a") << "garbage that is not a configuration";
    std::ofstream(dir.path / "config.b") << "more garbage";
  }
  auto before = fs::file_size(dir.path / "config.a");
  auto loaded = ConfigStore(dir.path).load();
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().message.find("corrupt") != std::string::npos);
  CHECK(fs::file_size(dir.path / "config.a") == before);
}

TEST_CASE("a configuration round-trips through msgpack") {
  ClusterModel c;
  c.version = 7;
  c.config_uuid = "abc";
  c.next_id = 12;
  c.mdisks = {{1, "m0", "/dev/loop0", "u0", 1 << 30}};
  c.pools = {{2, "p", 16 << 20, {1}, 1}};
  c.vdisks = {{3, "v", 2, 32 << 20, ExtentPolicy::sequential, {{1, 0}, {1, 5}}}};
  auto decoded = decode_config(encode_config(c));
  REQUIRE(decoded);
  const ClusterModel& d = decoded.value();
  CHECK(d.version == 7);
  CHECK(d.next_id == 12);
  CHECK(d.mdisks[0].path == "/dev/loop0");
  CHECK(d.pools[0].stripe_cursor == 1);
  CHECK(d.vdisks[0].policy == ExtentPolicy::sequential);
  CHECK(d.vdisks[0].extents == c.vdisks[0].extents);
  CHECK_FALSE(decode_config(bytes("\x81\xa1x")));
}

// Administrators: roles, password hashes, session tokens and the user
// edits (admin/admin_roles.hpp, admin/admin_auth.hpp, model/user_edits.hpp).
#include <catch2/catch.hpp>

#include <cerrno>

#include "admin/admin_auth.hpp"
#include "admin/login_guard.hpp"
#include "admin/admin_roles.hpp"
#include "model/user_edits.hpp"

using namespace sve;

TEST_CASE("roles: who may run which command", "[auth]") {
  for (Role r : {Role::monitor, Role::copyoperator, Role::administrator, Role::securityadmin}) {
    INFO(to_string(r));
    CHECK(parse_role(to_string(r)) == r);
    for (const char* read : {"vdisk.list", "vdisk.show", "node.stats", "cluster.status",
                             "fcmap.list", "host.list", "user.whoami"})
      CHECK(role_allows(r, read));
  }
  CHECK_FALSE(parse_role("root"));
  CHECK_FALSE(role_allows(Role::monitor, "vdisk.create"));
  CHECK_FALSE(role_allows(Role::monitor, "fcmap.start"));
  CHECK_FALSE(role_allows(Role::monitor, "chaos.start"));
  CHECK(role_allows(Role::copyoperator, "fcmap.start"));
  CHECK(role_allows(Role::copyoperator, "fcconsistgrp.stop"));
  CHECK_FALSE(role_allows(Role::copyoperator, "fcmap.create"));
  CHECK_FALSE(role_allows(Role::copyoperator, "vdisk.delete"));
  CHECK(role_allows(Role::administrator, "vdisk.delete"));
  CHECK(role_allows(Role::administrator, "vdisk.map"));
  CHECK(role_allows(Role::administrator, "chaos.start"));
  CHECK_FALSE(role_allows(Role::administrator, "host.create"));
  CHECK_FALSE(role_allows(Role::administrator, "host.chap"));
  CHECK_FALSE(role_allows(Role::administrator, "user.create"));
  CHECK_FALSE(role_allows(Role::administrator, "user.list"));
  CHECK(role_allows(Role::securityadmin, "user.create"));
  CHECK(role_allows(Role::securityadmin, "host.chap"));
  CHECK(role_allows(Role::securityadmin, "user.list"));
  // The debug shell sees messages with secrets in them.
  for (const char* shell : {"shell.actors", "shell.inspect", "shell.trace", "shell.cluster"}) {
    CHECK_FALSE(role_allows(Role::administrator, shell));
    CHECK_FALSE(role_allows(Role::monitor, shell));
    CHECK(role_allows(Role::securityadmin, shell));
  }
  CHECK(reads_only("pool.check"));
  CHECK_FALSE(reads_only("pool.create"));
}

TEST_CASE("passwords are kept as slow salted hashes", "[auth]") {
  CHECK_FALSE(hash_password("short"));
  auto a = hash_password("correct horse");
  auto b = hash_password("correct horse");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a.value() != b.value());  // salted
  CHECK(a.value().find("correct") == std::string::npos);
  CHECK(verify_password(a.value(), "correct horse"));
  CHECK_FALSE(verify_password(a.value(), "correct hors"));
  CHECK_FALSE(verify_password("", "correct horse"));
  CHECK_FALSE(verify_password("$argon2id$garbage", "correct horse"));
}

TEST_CASE("session tokens: a user and an expiry under the cluster's key", "[auth]") {
  std::string key = new_token_key(), other = new_token_key();
  CHECK(key.size() == 64);
  CHECK(key != other);
  std::string hash = "hash-of-alice";
  auto lookup = [&](const std::string& user) -> std::optional<std::string> {
    if (user == "alice") return hash;
    return std::nullopt;
  };
  std::string token = make_token(key, "alice", hash, 1000);
  CHECK(check_token(key, token, 999, lookup) == "alice");
  CHECK_FALSE(check_token(key, token, 1000, lookup));   // expired
  CHECK_FALSE(check_token(other, token, 999, lookup));  // another cluster's
  std::string forged = token;
  forged[forged.size() - 1] = forged.back() == '0' ? '1' : '0';
  CHECK_FALSE(check_token(key, forged, 999, lookup));
  // Another expiry or user under the same MAC.
  std::string later = token;
  later.replace(later.find(":1000:"), 6, ":9000:");
  CHECK_FALSE(check_token(key, later, 999, lookup));
  std::string bob = make_token(key, "bob", hash, 1000);
  CHECK_FALSE(check_token(key, bob, 999, lookup));  // bob is gone
  hash = "hash-of-alice's-new-password";
  CHECK_FALSE(check_token(key, token, 999, lookup));  // her password changed
  for (const char* bad : {"", "sve1:", "sve1:alice", "sve1:alice:", "sve1:alice:x:00",
                          "sve2:alice:1000:00", "sve1:alice:99999999999999999999:00"})
    CHECK_FALSE(check_token(key, bad, 999, lookup));
}

TEST_CASE("users: the first is a securityadmin, and the last one stays", "[auth]") {
  ClusterModel m;
  auto first = create_user(m, "mon", "monitor", "h1", "k1");
  REQUIRE_FALSE(first);
  CHECK(first.error().message.find("securityadmin") != std::string::npos);
  CHECK(m.token_key.empty());
  REQUIRE(create_user(m, "sec", "securityadmin", "h1", "k1"));
  CHECK(m.token_key == "k1");
  REQUIRE(create_user(m, "mon", "monitor", "h2", "k2"));
  CHECK(m.token_key == "k1");  // made once
  CHECK_FALSE(create_user(m, "mon", "monitor", "h3", ""));   // exists
  CHECK_FALSE(create_user(m, "x", "root", "h3", ""));        // no such role
  CHECK_FALSE(create_user(m, "x", "monitor", "", ""));       // no password
  auto last = delete_user(m, "sec");
  REQUIRE_FALSE(last);
  CHECK(last.error().code == EBUSY);
  REQUIRE(create_user(m, "sec2", "securityadmin", "h4", ""));
  REQUIRE(delete_user(m, "sec"));
  CHECK_FALSE(delete_user(m, "sec"));
  REQUIRE(set_password(m, "mon", "h5"));
  CHECK(m.find_user("mon")->password_hash == "h5");
  CHECK_FALSE(set_password(m, "nobody", "h6"));
}

TEST_CASE("failed logins lock a user out from that address, for a while", "[auth]") {
  LoginGuard guard;
  const uint64_t t0 = 1'000'000;
  for (uint32_t i = 1; i < kMaxFailedLogins; ++i) {
    guard.failed("adm", "10.0.0.9", t0 + i);
    CHECK_FALSE(guard.locked_until("adm", "10.0.0.9", t0 + i));
  }
  guard.failed("adm", "10.0.0.9", t0 + 10);
  auto until = guard.locked_until("adm", "10.0.0.9", t0 + 11);
  REQUIRE(until);
  CHECK(*until == t0 + 10 + kLockoutSeconds);
  // Another address, another name: not locked.
  CHECK_FALSE(guard.locked_until("adm", "10.0.0.8", t0 + 11));
  CHECK_FALSE(guard.locked_until("other", "10.0.0.9", t0 + 11));
  // More failures while locked do not move the end.
  guard.failed("adm", "10.0.0.9", t0 + 20);
  CHECK(*guard.locked_until("adm", "10.0.0.9", t0 + 21) == t0 + 10 + kLockoutSeconds);
  // Served: a fresh count.
  CHECK_FALSE(guard.locked_until("adm", "10.0.0.9", t0 + 10 + kLockoutSeconds));
  guard.failed("adm", "10.0.0.9", t0 + 400);
  CHECK_FALSE(guard.locked_until("adm", "10.0.0.9", t0 + 401));

  SECTION("a login that succeeds clears the count") {
    for (uint32_t i = 1; i < kMaxFailedLogins; ++i) guard.failed("u", "a", t0);
    guard.succeeded("u", "a");
    guard.failed("u", "a", t0);
    CHECK_FALSE(guard.locked_until("u", "a", t0));
  }
  SECTION("memory stays bounded, and a running lock outlives mere counts") {
    for (uint32_t i = 0; i < kMaxFailedLogins; ++i) guard.failed("victim", "b", t0);
    for (size_t i = 0; i < 2 * kMaxTracked; ++i) guard.failed("guess" + std::to_string(i), "c", t0 + 1 + i);
    CHECK(guard.tracked() <= kMaxTracked);
    CHECK(guard.locked_until("victim", "b", t0 + 2));
  }
}

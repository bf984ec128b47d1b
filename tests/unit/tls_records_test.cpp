// A TLS session's records driven from memory (io/tls/tls_records.hpp), as
// an NBD session on a core drives them: against a real GnuTLS client over a
// socketpair. Plain text GnuTLS had already taken in during the handshake
// phase comes out first; a reply larger than one sealed piece arrives whole
// through a socket that takes a little at a time; a record changed on the
// way is refused.
#include <gnutls/gnutls.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/tls/tls_records.hpp"
#include "io/tls/tls_server.hpp"

using namespace sve;

namespace {

const uint8_t kKey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// The client: GnuTLS with a pre-shared key, on a blocking socket.
struct Client {
  gnutls_session_t s = nullptr;
  gnutls_psk_client_credentials_t cred = nullptr;
  explicit Client(int fd) {
    gnutls_init(&s, GNUTLS_CLIENT);
    gnutls_priority_set_direct(s, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", nullptr);
    gnutls_psk_allocate_client_credentials(&cred);
    gnutls_datum_t key{const_cast<uint8_t*>(kKey), sizeof kKey};
    gnutls_psk_set_client_credentials(cred, "alice", &key, GNUTLS_PSK_KEY_RAW);
    gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred);
    gnutls_transport_set_int(s, fd);
  }
  ~Client() {
    gnutls_deinit(s);
    gnutls_psk_free_client_credentials(cred);
  }
  bool handshake() {
    int r;
    do r = gnutls_handshake(s);
    while (r < 0 && !gnutls_error_is_fatal(r));
    return r == 0;
  }
  bool send(const std::vector<uint8_t>& data) {
    for (size_t at = 0; at < data.size();) {
      ssize_t n = gnutls_record_send(s, data.data() + at, data.size() - at);
      if (n <= 0) return false;
      at += static_cast<size_t>(n);
    }
    return true;
  }
  std::vector<uint8_t> receive(size_t bytes) {  // shorter if the stream ends
    std::vector<uint8_t> out(bytes);
    size_t at = 0;
    while (at < bytes) {
      ssize_t n = gnutls_record_recv(s, out.data() + at, bytes - at);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
    out.resize(at);
    return out;
  }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
  return v;
}

// `iov` (n segments) past its first `skip` bytes.
std::vector<iovec> past(const iovec* iov, int n, size_t skip) {
  std::vector<iovec> rest;
  for (int i = 0; i < n; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    rest.push_back({static_cast<char*>(iov[i].iov_base) + skip, iov[i].iov_len - skip});
    skip = 0;
  }
  return rest;
}

// Reads `total` bytes of plain text into `iov` as a session does: what the
// records hold, then ciphertext from the socket into the inbox, with
// `change` applied to each piece of ciphertext received.
ssize_t read_all(TlsRecords& records, int fd, iovec* iov, int n, size_t total,
                 void (*change)(uint8_t*, size_t) = nullptr) {
  size_t got = 0;
  while (got < total) {
    std::vector<iovec> rest = past(iov, n, got);
    ssize_t r = records.read(rest.data(), static_cast<int>(rest.size()));
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r != -EAGAIN) return r;
    iovec room = records.inbox();
    REQUIRE(room.iov_len > 0);
    ssize_t k = ::recv(fd, room.iov_base, room.iov_len, 0);
    if (k <= 0) return 0;
    if (change) change(static_cast<uint8_t*>(room.iov_base), static_cast<size_t>(k));
    records.received(static_cast<size_t>(k));
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

TEST_CASE("TLS records through memory: buffered text first, partial sends, changed records",
          "[tls-records]") {
  char dir[] = "/tmp/sve-tls-records-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  std::string keys = std::string(dir) + "/keys.psk";
  {
    std::ofstream f(keys);
    f << "alice:";
    for (uint8_t b : kKey) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", b);
      f << hex;
    }
    f << "\n";
  }
  auto server = TlsServer::load(keys, "");
  REQUIRE(server);
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  Client client(fds[1]);

  // The client says hello and sends 100,000 bytes before the server's
  // session is taken over; the server has read the hello and one byte of
  // the next record (so GnuTLS holds the rest of that record's plain text).
  const auto hello = pattern(5, 1), first = pattern(100000, 2);
  bool sent = false;
  std::thread t([&] { sent = client.handshake() && client.send(hello) && client.send(first); });
  auto session = server.value()->accept(fds[0], 10000);
  REQUIRE(session);
  CHECK(session.value()->identity() == "alice");
  uint8_t head[6];
  REQUIRE(session.value()->recv_all(head, 6));
  t.join();
  REQUIRE(sent);
  CHECK(std::memcmp(head, hello.data(), 5) == 0);
  CHECK(head[5] == first[0]);
  TlsRecords records(std::move(session.value()));

  SECTION("what GnuTLS took in before comes out first, across segments and records") {
    std::vector<uint8_t> got(first.size() - 1);
    iovec iov[3] = {{got.data(), 7}, {got.data() + 7, 40000}, {got.data() + 40007, got.size() - 40007}};
    CHECK(read_all(records, fds[0], iov, 3, got.size()) == static_cast<ssize_t>(got.size()));
    CHECK(std::equal(got.begin(), got.end(), first.begin() + 1));
  }

  SECTION("a reply larger than a sealed piece arrives whole through a socket taking 1000 bytes") {
    const auto header = pattern(16, 3), data = pattern(1 << 20, 4);
    std::vector<uint8_t> received;
    std::thread reader([&] { received = client.receive(header.size() + data.size()); });
    iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                    {const_cast<uint8_t*>(data.data()), data.size()}};
    size_t sealed = 0, total = header.size() + data.size();
    while (sealed < total) {
      // The rest of the iov past what is sealed, 256 KiB at a time.
      std::vector<iovec> rest = past(iov, 2, sealed);
      ssize_t took = records.write(rest.data(), static_cast<int>(rest.size()), 256 * 1024);
      REQUIRE(took > 0);
      sealed += static_cast<size_t>(took);
      while (!records.outbox_empty()) {
        iovec out = records.outbox();
        ssize_t n = ::send(fds[0], out.iov_base, std::min<size_t>(out.iov_len, 1000), 0);
        REQUIRE(n > 0);
        records.sent(static_cast<size_t>(n));
      }
    }
    ::shutdown(fds[0], SHUT_WR);  // (a lost piece ends the client's read, not the test)
    reader.join();
    REQUIRE(received.size() == total);
    CHECK(std::equal(header.begin(), header.end(), received.begin()));
    CHECK(std::equal(data.begin(), data.end(), received.begin() + header.size()));
  }

  SECTION("a record changed on the way is refused") {
    std::vector<uint8_t> got(first.size() - 1);
    iovec iov{got.data(), got.size()};
    REQUIRE(read_all(records, fds[0], &iov, 1, got.size()) == static_cast<ssize_t>(got.size()));
    REQUIRE(client.send(pattern(3000, 5)));
    std::vector<uint8_t> more(3000);
    iovec into{more.data(), more.size()};
    // One bit of the record's body flipped (past its 5-byte header).
    auto flip = [](uint8_t* p, size_t n) {
      if (n > 100) p[100] ^= 0x10;
    };
    CHECK(read_all(records, fds[0], &into, 1, more.size(), flip) == -EPROTO);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  std::remove(keys.c_str());
  ::rmdir(dir);
}

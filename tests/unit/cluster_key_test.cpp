// The cluster key (io/auth/cluster_key.hpp) and the data channel's
// handshake over it (io/channel/channel_auth.hpp): a caller that holds the
// key gets its connection handed to a core; one without it, or one that
// replays a recorded handshake, is closed and counted.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "hw/port/tcp.hpp"
#include "io/auth/cluster_key.hpp"
#include "io/channel/channel_auth.hpp"
#include "io/channel/channel_listener.hpp"
#include "io/channel/cluster_tunnel.hpp"
#include "io/channel/peer_channels.hpp"
#include "io/uring/uring_engine.hpp"
#include "tests/unit/tunnel_test_helpers.hpp"

using namespace sve;
using namespace sve::channel;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sve-key-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::shared_ptr<ClusterKey> key_in(const std::string& dir) {
  auto key = std::make_shared<ClusterKey>(dir);
  REQUIRE(key->ensure().ok());
  return key;
}

// What a caller sees of one handshake with the listener.
struct CallerRun {
  bool listener_proved = false;
  bool sent_proof = false;
  FrameHeader hello;
  Nonce caller{}, listener{};
  PeerMac proof{};
};

// The caller's half over a blocking socket, with `key` (its proof may be
// replaced by `forged`), spelled out here rather than with call_handshake
// so that a test can forge it.
CallerRun call(uint16_t port, const ClusterKeyBytes& key, const PeerMac* forged = nullptr,
               Purpose purpose = Purpose::data_channel) {
  CallerRun run;
  auto fd = connect_tcp(HostPortAddress{"127.0.0.1", port});
  REQUIRE(fd.ok());
  int s = fd->get();
  run.hello = make_hello(7, 0, 1, 99);
  run.caller = fresh_nonce();
  REQUIRE(send_all(s, &run.hello, sizeof run.hello));
  REQUIRE(send_all(s, run.caller.bytes, kNonceBytes));
  FrameHeader challenge;
  uint8_t body[kNonceBytes + kProofBytes];
  if (!recv_all(s, &challenge, sizeof challenge) || !recv_all(s, body, sizeof body)) return run;
  REQUIRE(challenge.type == static_cast<uint8_t>(FrameType::challenge));
  std::memcpy(run.listener.bytes, body, kNonceBytes);
  run.listener_proved = peer_mac_matches(
      listener_proof(key, purpose, run.hello, run.caller, run.listener), body + kNonceBytes);
  run.proof = forged ? *forged : caller_proof(key, purpose, run.hello, run.caller, run.listener);
  FrameHeader answer;
  answer.type = static_cast<uint8_t>(FrameType::proof);
  answer.body_bytes = kProofBytes;
  run.sent_proof = send_all(s, &answer, sizeof answer) && send_all(s, run.proof.data(), kProofBytes);
  char byte;
  (void)::recv(s, &byte, 1, 0);  // until the listener has decided (and closed its copy)
  return run;
}

template <class Done>
void wait_for(Done done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(done());
}

}  // namespace

TEST_CASE("cluster key: a new node makes a key of its own, kept 0600, that survives a restart",
          "[cluster-key]") {
  TempDir dir;
  auto first = key_in(dir.path);
  struct stat st {};
  REQUIRE(::stat(first->path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(key_in(dir.path)->get() == first->get());
  // Another node's key is another key; a new cluster's key is a new key.
  TempDir other;
  CHECK(key_in(other.path)->get() != first->get());
  auto before = first->get();
  REQUIRE(first->renew().ok());
  CHECK(first->get() != before);
  CHECK(key_in(dir.path)->get() == first->get());  // durable
}

TEST_CASE("cluster key: a key handed over is installed whole, anything else is refused",
          "[cluster-key]") {
  TempDir a, b;
  auto cluster = key_in(a.path), joining = key_in(b.path);
  REQUIRE(joining->install(cluster->hex()).ok());
  CHECK(joining->get() == cluster->get());
  CHECK(key_in(b.path)->get() == cluster->get());  // durable
  std::string hex = cluster->hex();
  for (const std::string& bad : {std::string(), std::string("hello"), hex.substr(2), hex + "00",
                                 std::string(64, 'g'), std::string(64, ' ')}) {
    CHECK_FALSE(joining->install(bad).ok());
  }
  CHECK(joining->get() == cluster->get());  // unchanged by the refusals
  // A file that is not a key (torn, or something else) gives way to a key
  // of the node's own.
  std::ofstream(b.path + "/cluster.key") << "not a key";
  auto restarted = key_in(b.path);
  CHECK(restarted->get() != cluster->get());
  // One bit of the key flipped on disk: not that key, nor any key.
  REQUIRE(restarted->install(cluster->hex()).ok());
  {
    std::fstream f(b.path + "/cluster.key", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(8 + 5);
    char c = 0;
    f.read(&c, 1);
    f.seekp(8 + 5);
    c ^= 1;
    f.write(&c, 1);
  }
  auto flipped = key_in(b.path);
  ClusterKeyBytes damaged = cluster->get();
  damaged[5] ^= 1;
  CHECK(flipped->get() != cluster->get());
  CHECK(flipped->get() != damaged);
}

TEST_CASE("data channel handshake: only a caller with the cluster key reaches a core",
          "[cluster-key]") {
  TempDir a, b;
  auto key = key_in(a.path);
  auto stranger = key_in(b.path);
  std::atomic<int> delivered{0};
  std::atomic<uint32_t> origin{0};
  auto listener = ChannelListener::open("127.0.0.1", key,
                                        [&](UniqueFd, const FrameHeader& hello, const SessionKeys&) {
    origin = hello.origin;  // (on the listener's thread: no assertions there)
    ++delivered;
  });
  REQUIRE(listener.ok());
  uint16_t port = (*listener)->port();

  CallerRun good = call(port, key->get());
  CHECK(good.listener_proved);
  wait_for([&] { return delivered.load() == 1; });
  CHECK(origin.load() == 7);

  // Without the key: the listener's proof does not hold for it, and its own
  // proof is refused.
  CallerRun bad = call(port, stranger->get());
  CHECK_FALSE(bad.listener_proved);
  wait_for([&] { return (*listener)->refused() == 1; });

  // A recorded proof, replayed: the listener's nonce is new each time.
  CallerRun replay = call(port, stranger->get(), &good.proof);
  CHECK(replay.sent_proof);
  wait_for([&] { return (*listener)->refused() == 2; });

  // The key, but a proof made for another kind of connection.
  CallerRun other_kind = call(port, key->get(), nullptr, Purpose::cluster_link);
  CHECK_FALSE(other_kind.listener_proved);
  wait_for([&] { return (*listener)->refused() == 3; });

  // A hello with no proof after it, and a connection that says nothing.
  {
    auto fd = connect_tcp(HostPortAddress{"127.0.0.1", port});
    REQUIRE(fd.ok());
    FrameHeader hello = make_hello(7, 0, 1, 1);
    Nonce n = fresh_nonce();
    REQUIRE(send_all(fd->get(), &hello, sizeof hello));
    REQUIRE(send_all(fd->get(), n.bytes, kNonceBytes));
    ::shutdown(fd->get(), SHUT_WR);
    wait_for([&] { return (*listener)->refused() == 4; });
  }
  CHECK(delivered.load() == 1);
  CHECK((*listener)->accepted() == 1);
}

namespace {

using test::Echo;
using test::through;

}  // namespace

TEST_CASE("cluster tunnel: links between nodes with the key carry bytes, others are refused",
          "[cluster-key]") {
  TempDir a, b, c;
  auto key = key_in(a.path), stranger = key_in(c.path);
  auto same = std::make_shared<ClusterKey>(b.path);
  REQUIRE(same->install(key->hex()).ok());
  Echo middleman;  // node 2's, behind its tunnel
  auto node2 = ClusterTunnel::open(HostPortAddress{"127.0.0.1", 0}, 2, same);
  REQUIRE(node2.ok());
  (*node2)->set_inner_port(middleman.port());
  std::string node2_address = "127.0.0.1:" + std::to_string((*node2)->port());

  // A node without the key: its link is refused at node 2, and it learns
  // that node 2 does not hold its key either.
  auto outsider = ClusterTunnel::open(HostPortAddress{"127.0.0.1", 0}, 9, stranger);
  REQUIRE(outsider.ok());
  auto bad_route = (*outsider)->route(node2_address);
  REQUIRE(bad_route.ok());
  CHECK(through(*bad_route, "inject").empty());
  wait_for([&] { return (*node2)->stats().refused == 1 && (*outsider)->stats().failed == 1; });

  // Node 1, with the key: its link reaches node 2's middleman and back.
  auto node1 = ClusterTunnel::open(HostPortAddress{"127.0.0.1", 0}, 1, key);
  REQUIRE(node1.ok());
  auto route = (*node1)->route(node2_address);
  REQUIRE(route.ok());
  CHECK((*node1)->route(node2_address)->port == route->port);  // one per peer
  CHECK(through(*route, "heartbeat") == "heartbeat");
  CHECK((*node2)->stats().accepted == 1);
  CHECK((*node1)->stats().connected == 1);
}

TEST_CASE("data channel: a core sends nothing to a listener that has not proved the key",
          "[cluster-key]") {
  TempDir a;
  auto key = key_in(a.path);
  auto ring = std::move(UringEngine::create(64).value());
  // A listener that takes the connection (the kernel's backlog) and never
  // answers the hello.
  UniqueFd silent = std::move(listen_tcp(HostPortAddress{"127.0.0.1", 0}).value());
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  REQUIRE(::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0);
  PeerChannelsSetup setup;
  setup.ring = ring.get();
  setup.self = 1;
  setup.key = key;
  {
    PeerChannels channels(setup);
    channels.set_peer(2, "127.0.0.1", ntohs(bound.sin_port));
    bool connected = false;
    for (int i = 0; i < 300; ++i) {
      ring->poll();
      connected = connected || channels.stats().connects > 0;
      REQUIRE(channels.up(2) == nullptr);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(connected);  // (so the channel was there to be handed out, and was not)
    channels.close_all();
    for (int i = 0; i < 1000 && channels.stats().disconnects == 0; ++i) ring->poll();
  }
  // A listener that answers with a proof it could not make (no key): the
  // core closes the connection, counts it, and hands nothing out.
  UniqueFd fake = std::move(listen_tcp(HostPortAddress{"127.0.0.1", 0}).value());
  REQUIRE(::getsockname(fake.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0);
  std::thread impostor([&] {
    if (!wait_acceptable(fake.get(), 5000)) return;
    UniqueFd c(::accept4(fake.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char hello[sizeof(FrameHeader) + kNonceBytes];
    if (!recv_all(c.get(), hello, sizeof hello)) return;
    FrameHeader h;
    h.type = static_cast<uint8_t>(FrameType::challenge);
    h.body_bytes = kNonceBytes + kProofBytes;
    char out[sizeof h + kNonceBytes + kProofBytes];
    std::memcpy(out, &h, sizeof h);
    random_bytes(out + sizeof h, kNonceBytes + kProofBytes);
    send_all(c.get(), out, sizeof out);
    char byte;
    (void)::recv(c.get(), &byte, 1, 0);  // until the core closes
  });
  {
    PeerChannels channels(setup);
    channels.set_peer(2, "127.0.0.1", ntohs(bound.sin_port));
    for (int i = 0; i < 2000 && channels.stats().unproven == 0; ++i) {
      ring->poll();
      REQUIRE(channels.up(2) == nullptr);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(channels.stats().unproven == 1);
    for (int i = 0; i < 200; ++i) {
      ring->poll();
      REQUIRE(channels.up(2) == nullptr);
    }
    channels.close_all();
    for (int i = 0; i < 1000 && channels.stats().disconnects == 0; ++i) ring->poll();
  }
  impostor.join();
}

// What seals a connection between two nodes after its handshake
// (io/channel/frame_seal.hpp): the data channel's frame tags and the
// cluster link's encrypted records. A changed, replayed, reordered or
// injected frame or record fails; the two ends of one handshake agree on
// their keys and no two connections share them; a sealed data channel
// handles only what carries the right tag, and ends the connection on the
// first that does not; the cluster tunnel cuts a link whose records were
// changed on the path, and nothing it relays crosses the path in clear.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "hw/port/tcp.hpp"
#include "io/channel/channel_auth.hpp"
#include "io/channel/cluster_tunnel.hpp"
#include "io/channel/data_channel.hpp"
#include "io/channel/frame_seal.hpp"
#include "tests/unit/tunnel_test_helpers.hpp"

using namespace sve;
using namespace sve::channel;

namespace {

PeerMac some_key(uint8_t seed) {
  PeerMac k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

std::string frame_bytes(uint32_t id, char fill) {
  FrameHeader h;
  h.type = static_cast<uint8_t>(FrameType::mirror_ack);
  h.id = id;
  std::string s(reinterpret_cast<const char*>(&h), sizeof h);
  s.append(64, fill);
  return s;
}

struct Tag {
  uint8_t bytes[kTagBytes];
};

Tag tag_of(FrameSealer& s, const std::string& frame) {
  // In two pieces, as a gathered send has them.
  iovec parts[2] = {{const_cast<char*>(frame.data()), 10},
                    {const_cast<char*>(frame.data()) + 10, frame.size() - 10}};
  Tag t;
  s.seal(parts, 2, t.bytes);
  return t;
}

}  // namespace

TEST_CASE("frame tags: each frame checks once, in order, under its key", "[frame-seal]") {
  FrameSealer sealer(some_key(1));
  std::string a = frame_bytes(1, 'a'), b = frame_bytes(2, 'b');
  Tag ta = tag_of(sealer, a), tb = tag_of(sealer, b);
  CHECK(sealer.frames() == 2);
  CHECK(std::memcmp(ta.bytes, tb.bytes, kTagBytes) != 0);

  FrameOpener in_order(some_key(1));
  CHECK(in_order.check(a.data(), a.size(), ta.bytes));
  CHECK(in_order.check(b.data(), b.size(), tb.bytes));

  FrameOpener changed(some_key(1));
  std::string a2 = a;
  a2[sizeof(FrameHeader) + 5] ^= 0x20;  // one bit of the body
  CHECK_FALSE(changed.check(a2.data(), a2.size(), ta.bytes));

  FrameOpener replayed(some_key(1));
  CHECK(replayed.check(a.data(), a.size(), ta.bytes));
  CHECK_FALSE(replayed.check(a.data(), a.size(), ta.bytes));  // frame 1 is not frame 0

  FrameOpener reordered(some_key(1));
  CHECK_FALSE(reordered.check(b.data(), b.size(), tb.bytes));

  FrameOpener other_key(some_key(2));
  CHECK_FALSE(other_key.check(a.data(), a.size(), ta.bytes));

  FrameOpener cut_short(some_key(1));
  CHECK_FALSE(cut_short.check(a.data(), a.size() - 8, ta.bytes));
}

TEST_CASE("session keys: both ends agree, directions differ, connections differ",
          "[frame-seal]") {
  ClusterKeyBytes key{};
  key[0] = 9;
  FrameHeader hello = make_hello(1, 0, 2, 77);
  Nonce c = fresh_nonce(), l = fresh_nonce();
  SessionKeys caller = session_keys(key, Purpose::data_channel, hello, c, l, true);
  SessionKeys listener = session_keys(key, Purpose::data_channel, hello, c, l, false);
  CHECK(caller.send == listener.receive);
  CHECK(caller.receive == listener.send);
  CHECK(caller.send != caller.receive);
  // Not the proofs that crossed the wire.
  CHECK(caller.send != caller_proof(key, Purpose::data_channel, hello, c, l));
  CHECK(listener.send != listener_proof(key, Purpose::data_channel, hello, c, l));
  // Another connection (new nonces), another kind, another key: other keys.
  CHECK(session_keys(key, Purpose::data_channel, hello, fresh_nonce(), l, true).send != caller.send);
  CHECK(session_keys(key, Purpose::cluster_link, hello, c, l, true).send != caller.send);
  ClusterKeyBytes other = key;
  other[1] ^= 1;
  CHECK(session_keys(other, Purpose::data_channel, hello, c, l, true).send != caller.send);
}

TEST_CASE("link records: sealed, opened across any cut of the stream, refused when changed",
          "[frame-seal]") {
  LinkSealer sealer(some_key(3));
  std::string wire;
  std::string first = "heartbeat from node 1", second(70000 - kMaxRecordPlain, 'x');
  sealer.seal(first.data(), first.size(), wire);
  sealer.seal(second.data(), second.size(), wire);
  CHECK(wire.find("heartbeat") == std::string::npos);  // not in clear

  SECTION("byte by byte") {
    LinkOpener opener(some_key(3));
    std::string out;
    for (char c : wire) REQUIRE(opener.feed(&c, 1, out));
    CHECK(out == first + second);
  }
  SECTION("one changed byte") {
    // In the first record's length, its ciphertext; in the second's tag.
    for (size_t at : {size_t{2}, size_t{6}, wire.size() - 1}) {
      std::string bad = wire;
      bad[at] ^= 1;
      LinkOpener opener(some_key(3));
      std::string out;
      CHECK_FALSE(opener.feed(bad.data(), bad.size(), out));
      CHECK_FALSE(opener.error().empty());
      CHECK(out == (at < 10 ? "" : first));  // only what came before it
    }
  }
  SECTION("a record replayed") {
    size_t one = kRecordHeaderBytes + first.size() + kTagBytes;
    std::string twice = wire.substr(0, one) + wire.substr(0, one);
    LinkOpener opener(some_key(3));
    std::string out;
    CHECK_FALSE(opener.feed(twice.data(), twice.size(), out));
    CHECK(out == first);
  }
  SECTION("a length no record has") {
    for (uint32_t length : {uint32_t{0}, uint32_t{kTagBytes - 1}, uint32_t{kMaxRecordPlain + kTagBytes + 1}}) {
      std::string bad(reinterpret_cast<const char*>(&length), 4);
      bad.append(32, 'z');
      LinkOpener opener(some_key(3));
      std::string out;
      CHECK_FALSE(opener.feed(bad.data(), bad.size(), out));
      CHECK_FALSE(opener.feed("", 0, out));  // and it stays refused
    }
  }
  SECTION("the other direction's key") {
    LinkOpener opener(some_key(4));
    std::string out;
    CHECK_FALSE(opener.feed(wire.data(), wire.size(), out));
  }
}

namespace {

struct Recorder final : ChannelHandler {
  std::vector<FrameHeader> hellos;
  std::vector<uint64_t> copies;  // ids
  bool closed = false;
  std::string why;
  bool on_hello(const FrameHeader& h) override {
    hellos.push_back(h);
    return true;
  }
  int32_t on_mirror(const MirrorIn& in) override {
    copies.push_back(in.header->id);
    return 0;
  }
  void on_closed(const std::string& reason) override {
    closed = true;
    why = reason;
  }
};

// A frame as the peer's sealed end sends it: header, body, tag.
std::string sealed_frame(FrameSealer& s, FrameHeader h, const std::string& body) {
  h.body_bytes = static_cast<uint32_t>(body.size());
  std::string f(reinterpret_cast<const char*>(&h), sizeof h);
  f += body;
  iovec whole{f.data(), f.size()};
  uint8_t tag[kTagBytes];
  s.seal(&whole, 1, tag);
  f.append(reinterpret_cast<const char*>(tag), kTagBytes);
  return f;
}

std::string one_block_copy(uint64_t id, FrameHeader& h) {
  h.type = static_cast<uint8_t>(FrameType::mirror);
  h.count = 1;
  h.id = id;
  std::string body(16 + kBlockBytes, '\0');
  uint64_t block = 5, seq = id;
  std::memcpy(body.data(), &block, 8);
  std::memcpy(body.data() + 8, &seq, 8);
  return body;
}

}  // namespace

TEST_CASE("a sealed data channel handles only frames with the right tag, and tags its own",
          "[frame-seal]") {
  auto ring = std::move(UringEngine::create(64).value());
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  UniqueFd peer(fds[1]);
  Recorder rec;
  SessionKeys mine{some_key(5), some_key(6)};
  auto channel = std::make_unique<DataChannel>(*ring, UniqueFd(fds[0]), rec,
                                               ChannelLimits{1 << 20, true});
  channel->seal(mine);
  CHECK(channel->sealed());
  channel->start();
  FrameSealer theirs(mine.receive);  // the peer's end of the same keys
  auto run_until = [&](auto done) {
    for (int i = 0; i < 100000 && !done(); ++i) ring->poll();
    REQUIRE(done());
  };

  std::string hello = sealed_frame(theirs, make_hello(3, 0, 1, 1), std::string(kNonceBytes, 'n'));
  FrameHeader h;
  std::string body = one_block_copy(41, h);
  std::string copy = sealed_frame(theirs, h, body);
  REQUIRE(send_all(peer.get(), hello.data(), hello.size()));
  REQUIRE(send_all(peer.get(), copy.data(), copy.size()));
  run_until([&] { return rec.copies.size() == 1; });
  CHECK(rec.hellos.size() == 1);

  // Its answer leaves tagged under the other key, frame 0 of its direction.
  run_until([&] { return channel->stats().frames_sent == 1; });
  FrameHeader ack;
  REQUIRE(recv_all(peer.get(), &ack, sizeof ack));
  CHECK(ack.type == static_cast<uint8_t>(FrameType::mirror_ack));
  CHECK(ack.id == 41);
  uint8_t tag[kTagBytes];
  REQUIRE(recv_all(peer.get(), tag, sizeof tag));
  FrameOpener opener(mine.send);
  CHECK(opener.check(reinterpret_cast<const char*>(&ack), sizeof ack, tag));

  // A copy it sends: the tag covers the body too (sent from where it lies).
  auto blocks = std::make_shared<std::vector<uint64_t>>(std::vector<uint64_t>{9, 1});
  auto data = std::make_shared<std::string>(kBlockBytes, 'd');
  OutMirror m;
  m.id = 5;
  m.count = 1;
  m.blocks = blocks->data();
  m.seqs = blocks->data() + 1;
  m.data = data->data();
  m.keep = blocks;
  REQUIRE(channel->send_mirror(m));
  run_until([&] { return channel->stats().frames_sent == 2; });
  std::string sent(sizeof(FrameHeader) + 16 + kBlockBytes, '\0');
  REQUIRE(recv_all(peer.get(), sent.data(), sent.size()));
  REQUIRE(recv_all(peer.get(), tag, sizeof tag));
  CHECK(sent.substr(sent.size() - kBlockBytes) == *data);
  CHECK(opener.check(sent.data(), sent.size(), tag));

  SECTION("a frame replayed on the path") {
    REQUIRE(send_all(peer.get(), copy.data(), copy.size()));
  }
  SECTION("a frame injected without the key") {
    FrameSealer forger(some_key(7));
    FrameHeader h2;
    std::string b2 = one_block_copy(42, h2);
    std::string forged = sealed_frame(forger, h2, b2);
    REQUIRE(send_all(peer.get(), forged.data(), forged.size()));
  }
  SECTION("a frame changed on the path") {
    FrameHeader h2;
    std::string b2 = one_block_copy(42, h2);
    std::string changed = sealed_frame(theirs, h2, b2);
    changed[sizeof(FrameHeader) + 16 + 100] ^= 0x01;  // one bit of the data
    REQUIRE(send_all(peer.get(), changed.data(), changed.size()));
  }
  SECTION("a frame without a tag") {
    FrameHeader h2;
    std::string b2 = one_block_copy(42, h2);
    h2.body_bytes = static_cast<uint32_t>(b2.size());
    std::string bare(reinterpret_cast<const char*>(&h2), sizeof h2);
    bare += b2;
    bare.append(kTagBytes, '\0');  // (or the next frame's first bytes)
    REQUIRE(send_all(peer.get(), bare.data(), bare.size()));
  }
  run_until([&] { return channel->closed(); });
  CHECK(rec.copies.size() == 1);
  CHECK(channel->stats().tampered == 1);
  CHECK(rec.why.find("failed its check") != std::string::npos);
}

namespace {

using test::Echo;
using test::through;

uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// On the path between two tunnels: relays one connection, keeps what
// crossed it from the caller, and flips one bit at `flip_at` of that
// direction (none if 0).
struct OnPath {
  UniqueFd listener = std::move(listen_tcp(HostPortAddress{"127.0.0.1", 0}).value());
  uint16_t target;
  size_t flip_at;
  std::string seen;
  std::thread thread;
  OnPath(uint16_t to, size_t flip) : target(to), flip_at(flip) {
    thread = std::thread([this] { run(); });
  }
  void run() {
    if (!wait_acceptable(listener.get(), 5000)) return;
    UniqueFd a(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    auto b = connect_tcp(HostPortAddress{"127.0.0.1", target});
    if (!b) return;
    int from[2] = {a.get(), b->get()}, to[2] = {b->get(), a.get()};
    bool open[2] = {true, true};
    char buf[4096];
    while (open[0] || open[1]) {
      pollfd p[2] = {{from[0], static_cast<short>(open[0] ? POLLIN : 0), 0},
                     {from[1], static_cast<short>(open[1] ? POLLIN : 0), 0}};
      if (::poll(p, 2, 5000) <= 0) return;
      for (int d = 0; d < 2; ++d) {
        if (!open[d] || !p[d].revents) continue;
        ssize_t n = ::recv(from[d], buf, sizeof buf, 0);
        if (n <= 0) {
          open[d] = false;
          ::shutdown(to[d], SHUT_WR);
          continue;
        }
        if (d == 0) {
          size_t before = seen.size();
          seen.append(buf, size_t(n));
          if (flip_at && flip_at >= before && flip_at < seen.size()) buf[flip_at - before] ^= 1;
        }
        if (!send_all(to[d], buf, size_t(n))) return;
      }
    }
  }
  ~OnPath() { thread.join(); }
};

}  // namespace

TEST_CASE("cluster tunnel: the path sees no clear text, and a changed record cuts the link",
          "[frame-seal]") {
  auto key = std::make_shared<ClusterKey>("");
  REQUIRE(key->renew().ok());
  Echo middleman;
  auto node2 = ClusterTunnel::open(HostPortAddress{"127.0.0.1", 0}, 2, key);
  REQUIRE(node2.ok());
  (*node2)->set_inner_port(middleman.port());
  auto node1 = ClusterTunnel::open(HostPortAddress{"127.0.0.1", 0}, 1, key);
  REQUIRE(node1.ok());
  // The handshake's frames from the caller: hello (header and nonce), proof.
  const size_t handshake = 2 * sizeof(FrameHeader) + kNonceBytes + kProofBytes;
  std::string secret = "event: host.chap secret=hunter2-hunter2";

  SECTION("untouched") {
    OnPath path((*node2)->port(), 0);
    auto route = (*node1)->route("127.0.0.1:" + std::to_string(port_of(path.listener.get())));
    REQUIRE(route.ok());
    CHECK(through(*route, secret) == secret);
    path.thread.join();
    path.thread = std::thread([] {});
    CHECK(path.seen.size() > handshake);
    CHECK(path.seen.find("hunter2") == std::string::npos);
    CHECK((*node2)->stats().tampered == 0);
  }
  SECTION("one bit changed after the handshake") {
    OnPath path((*node2)->port(), handshake + kRecordHeaderBytes + 3);
    auto route = (*node1)->route("127.0.0.1:" + std::to_string(port_of(path.listener.get())));
    REQUIRE(route.ok());
    CHECK(through(*route, secret).empty());
    CHECK((*node2)->stats().tampered == 1);
    CHECK(middleman.echoed.load() == 0);  // nothing of it reached the middleman
  }
}

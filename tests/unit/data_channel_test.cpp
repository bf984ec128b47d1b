// The node-to-node data channel (io/channel/) over a socket pair, both ends
// driven by one ring on the test thread: copies arrive intact and are
// answered; the window bounds what is in flight; a bad frame ends the
// connection without harm; an answer from an earlier connection is
// ignored; a cut connection fails every unanswered copy exactly once.
// Forwarded requests travel the same way, with their data both ways.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "io/channel/channel_auth.hpp"
#include "io/channel/data_channel.hpp"
#include "io/channel/peer_channels.hpp"

using namespace sve;
using namespace sve::channel;

namespace {

struct Receiver final : ChannelHandler {
  std::vector<FrameHeader> hellos;
  std::map<uint64_t, uint64_t> copies;  // block -> first byte of its data
  std::vector<uint64_t> released;
  int32_t answer = 0;
  bool closed = false;
  std::string why;
  bool on_hello(const FrameHeader& h) override {
    hellos.push_back(h);
    return h.origin != 666;
  }
  std::vector<uint64_t> order;  // copy ids as they arrived
  int32_t on_mirror(const MirrorIn& in) override {
    order.push_back(in.header->id);
    for (uint32_t i = 0; i < in.header->count; ++i)
      copies[in.blocks[i]] = static_cast<unsigned char>(in.data[i * kBlockBytes]) + in.seqs[i] * 1000;
    return answer;
  }
  void on_release(const ReleaseIn& in) override {
    for (uint32_t i = 0; i < in.header->count; ++i) released.push_back(in.blocks[i]);
  }
  struct Ref {
    FrameHeader header;
    uint64_t forward_id;
    std::vector<uint64_t> blocks, seqs;
  };
  std::vector<Ref> refs;
  int32_t on_mirror_ref(const MirrorRefIn& in) override {
    order.push_back(in.header->id);
    refs.push_back({*in.header, in.forward_id,
                    std::vector<uint64_t>(in.blocks, in.blocks + in.header->count),
                    std::vector<uint64_t>(in.seqs, in.seqs + in.header->count)});
    return answer;
  }
  struct Forwarded {
    FrameHeader header;
    ForwardBody body;
    std::string data;
  };
  std::vector<Forwarded> forwarded;
  void on_forward(const ForwardIn& in) override {
    std::string data;
    data.assign(in.data, data_out_bytes(static_cast<IoOp>(in.body->op), in.body->length));
    forwarded.push_back({*in.header, *in.body, data});
  }
  void on_closed(const std::string& reason) override {
    closed = true;
    why = reason;
  }
};

struct Sender final : ChannelHandler {
  std::map<uint64_t, std::vector<int32_t>> answers;  // id -> every answer it got
  std::map<uint64_t, std::string> answer_data;       // forwarded reads' data
  uint64_t delay_ms = 0;                             // a delay fault
  bool closed = false;
  uint64_t send_delay_ms() override { return delay_ms; }
  void on_mirror_answer(uint64_t id, int32_t status) override { answers[id].push_back(status); }
  void on_forward_answer(const ForwardAnswerIn& in) override {
    answers[in.id].push_back(in.status);
    answer_data[in.id].assign(in.data ? in.data : "", in.bytes);
  }
  void on_closed(const std::string&) override { closed = true; }
};

// One copy of `n` blocks, each filled with `fill`.
struct Copy {
  std::vector<uint64_t> blocks, seqs;
  std::vector<char> data;
  Copy(uint64_t first, uint32_t n, char fill, uint64_t seq) {
    for (uint32_t i = 0; i < n; ++i) {
      blocks.push_back(first + i);
      seqs.push_back(seq);
    }
    data.assign(size_t{n} * kBlockBytes, fill);
  }
};

OutMirror out_of(const std::shared_ptr<Copy>& c, uint64_t id) {
  OutMirror m;
  m.origin = 1;
  m.vdisk = 7;
  m.epoch = 3;
  m.id = id;
  m.count = static_cast<uint32_t>(c->blocks.size());
  m.blocks = c->blocks.data();
  m.seqs = c->seqs.data();
  m.data = c->data.data();
  m.keep = c;
  return m;
}

struct Pair {
  std::unique_ptr<UringEngine> ring = std::move(UringEngine::create(256).value());
  int fds[2] = {-1, -1};
  Sender sender;
  Receiver receiver;
  std::unique_ptr<DataChannel> out, in;
  explicit Pair(uint64_t window = 16ull << 20) {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    out = std::make_unique<DataChannel>(*ring, UniqueFd(fds[0]), sender,
                                        ChannelLimits{window, false});
    in = std::make_unique<DataChannel>(*ring, UniqueFd(fds[1]), receiver,
                                       ChannelLimits{window, true});
    out->start();
  }
  template <class Done>
  void run_until(Done done) {
    for (int i = 0; i < 100000 && !done(); ++i) ring->poll();
    REQUIRE(done());
  }
  ~Pair() {
    out->close("test over");
    in->close("test over");
    run_until([&] { return out->closed() && in->closed(); });
  }
};

}  // namespace

TEST_CASE("data channel: copies arrive intact, batched, and are answered") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 42), fresh_nonce()));
  for (uint64_t id = 1; id <= 50; ++id)
    REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(id * 10, 3, char(id), id), id)));
  REQUIRE(p.out->send_release(1, 7, {10, 11}, {1, 1}));
  p.run_until([&] { return p.sender.answers.size() == 50 && p.receiver.released.size() == 2; });
  REQUIRE(p.receiver.hellos.size() == 1);
  CHECK(p.receiver.hellos[0].id == 42);
  CHECK(p.receiver.copies.size() == 150);
  for (uint64_t id = 1; id <= 50; ++id) {
    CHECK(p.sender.answers[id] == std::vector<int32_t>{0});
    CHECK(p.receiver.copies[id * 10 + 2] == static_cast<unsigned char>(id) + id * 1000);
  }
  CHECK(p.out->window_used() == 0);
  CHECK(p.out->copies_unanswered() == 0);
  // Small frames share calls: fewer sendmsg calls than frames.
  CHECK(p.in->stats().sends < p.in->stats().frames_sent);
}

TEST_CASE("data channel: the window bounds the copies in flight and the rest wait in order") {
  uint64_t frame = kHeaderBytes + body_bytes_for(FrameType::mirror, 4);
  Pair p(3 * frame);
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  for (uint64_t id = 1; id <= 20; ++id)
    REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(id * 100, 4, 'x', id), id)));
  // The receiver does not read yet: at most the window is out.
  for (int i = 0; i < 100; ++i) p.ring->poll();
  CHECK(p.out->window_used() <= 3 * frame);
  CHECK(p.out->copies_unanswered() == 3);
  CHECK(p.out->frames_waiting() >= 17);
  CHECK(p.out->stats().window_waits > 0);
  p.in->start();
  p.run_until([&] { return p.sender.answers.size() == 20; });
  CHECK(p.out->window_used() == 0);
}

TEST_CASE("data channel: a bad frame ends the connection, and every unanswered copy fails once") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  p.run_until([&] { return p.receiver.hellos.size() == 1; });
  SECTION("bad magic") {
    FrameHeader h;
    h.magic = 0xdeadbeef;
    // Written behind the channel's back, as a hostile peer would.
    REQUIRE(::write(p.fds[0], &h, sizeof h) == sizeof h);
  }
  SECTION("a count that does not match the body") {
    FrameHeader h;
    h.type = static_cast<uint8_t>(FrameType::mirror);
    h.count = 2;
    h.body_bytes = 8;
    REQUIRE(::write(p.fds[0], &h, sizeof h) == sizeof h);
  }
  SECTION("too many blocks") {
    FrameHeader h;
    h.type = static_cast<uint8_t>(FrameType::mirror);
    h.count = kMaxBlocks + 1;
    h.body_bytes = static_cast<uint32_t>(body_bytes_for(FrameType::mirror, h.count));
    REQUIRE(::write(p.fds[0], &h, sizeof h) == sizeof h);
  }
  p.run_until([&] { return p.receiver.closed; });
  CHECK(p.receiver.why.find("bad frame") != std::string::npos);
  CHECK(p.receiver.copies.empty());
  // The sender's end sees the connection go; its copies fail, once each.
  p.out->send_mirror(out_of(std::make_shared<Copy>(1, 1, 'a', 1), 9));
  p.run_until([&] { return p.sender.closed; });
  for (const auto& [id, got] : p.sender.answers) CHECK(got.size() == 1);
}

TEST_CASE("data channel: the first frame of an accepted connection must be a hello") {
  Pair p;
  p.in->start();
  p.out->send_mirror(out_of(std::make_shared<Copy>(1, 1, 'a', 1), 1));
  p.run_until([&] { return p.receiver.closed; });
  CHECK(p.receiver.why.find("hello") != std::string::npos);
  CHECK(p.receiver.copies.empty());
  p.run_until([&] { return p.sender.closed; });
  CHECK(p.sender.answers[1] == std::vector<int32_t>{ECONNRESET});
}

TEST_CASE("data channel: an answer the connection did not ask for is ignored") {
  Pair p;
  // The peer answers copy 5, which this connection never sent (an answer
  // from before a reconnection).
  FrameHeader stale;
  stale.type = static_cast<uint8_t>(FrameType::mirror_ack);
  stale.id = 5;
  REQUIRE(::write(p.fds[1], &stale, sizeof stale) == sizeof stale);
  REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(1, 1, 'a', 1), 6)));
  p.run_until([&] { return p.out->stats().stale_answers == 1; });
  CHECK(p.sender.answers.count(5) == 0);
  CHECK(p.out->copies_unanswered() == 1);
}

TEST_CASE("data channel: a cut connection fails sent and waiting copies exactly once") {
  uint64_t frame = kHeaderBytes + body_bytes_for(FrameType::mirror, 1);
  Pair p(2 * frame);
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  for (uint64_t id = 1; id <= 10; ++id)
    REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(id, 1, 'z', 1), id)));
  for (int i = 0; i < 50; ++i) p.ring->poll();
  ::shutdown(p.fds[1], SHUT_RDWR);  // the peer goes away unread
  p.run_until([&] { return p.sender.closed; });
  REQUIRE(p.sender.answers.size() == 10);
  for (const auto& [id, got] : p.sender.answers) CHECK(got == std::vector<int32_t>{ECONNRESET});
  CHECK_FALSE(p.out->send_mirror(out_of(std::make_shared<Copy>(1, 1, 'a', 1), 11)));
}

TEST_CASE("data channel: seeded garbage from a peer never crashes the receiving end") {
  // Frames with random fields (some valid, most not), random bytes between
  // them: the receiver either takes what is valid or ends the connection,
  // and only stores copies a valid mirror frame carried. Runs under the
  // sanitizers in the sanitizer stage.
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::minstd_rand rng(seed);
    Pair p;
    p.in->start();
    FrameHeader hello;
    hello.type = static_cast<uint8_t>(FrameType::hello);
    REQUIRE(::write(p.fds[0], &hello, sizeof hello) == sizeof hello);
    std::vector<char> junk;
    for (int frame = 0; frame < 20; ++frame) {
      FrameHeader h;
      h.type = static_cast<uint8_t>(rng() % 8);
      h.count = rng() % 4 == 0 ? rng() : rng() % 3;
      h.body_bytes = rng() % 3 == 0 ? rng() % 100000
                                    : static_cast<uint32_t>(body_bytes_for(
                                          static_cast<FrameType>(h.type), h.count));
      if (rng() % 10 == 0) h.magic = rng();
      if (rng() % 10 == 0) h.version = static_cast<uint8_t>(rng());
      h.id = rng();
      const char* raw = reinterpret_cast<const char*>(&h);
      junk.insert(junk.end(), raw, raw + sizeof h);
      size_t body = std::min<size_t>(h.body_bytes, 64 * 1024);
      for (size_t i = 0; i < body; ++i) junk.push_back(static_cast<char>(rng()));
      if (rng() % 5 == 0)
        for (int i = 0, n = rng() % 64; i < n; ++i) junk.push_back(static_cast<char>(rng()));
    }
    // The peer writes it all and goes away; the receiver reads until it
    // ends the connection or sees the peer's end.
    std::thread writer([&] {
      size_t at = 0;
      while (at < junk.size()) {
        ssize_t n = ::send(p.fds[0], junk.data() + at, junk.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      ::shutdown(p.fds[0], SHUT_WR);
    });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!p.receiver.closed && std::chrono::steady_clock::now() < deadline) p.ring->poll();
    writer.join();
    REQUIRE(p.receiver.closed);
    CHECK(p.in->closed());
  }
}

namespace {

// A request whose buffer is `parts` pieces of memory that `keep` holds.
IoRequestPtr request_over(std::vector<std::string>& parts, IoOp op, uint64_t offset) {
  std::vector<iovec> segments;
  uint64_t length = 0;
  for (auto& part : parts) {
    segments.push_back({part.data(), part.size()});
    length += part.size();
  }
  IoRequestPtr r = make_request();
  r->op = op;
  r->volume = 7;
  r->offset = offset;
  r->length = length;
  r->buffer = Buffer::borrow(segments.data(), static_cast<unsigned>(segments.size()));
  return r;
}

OutForward forward_of(const IoRequestPtr& r, uint64_t id) {
  OutForward f;
  f.origin = 1;
  f.vdisk = r->volume;
  f.id = id;
  f.generation = 5;
  f.body.offset = r->offset;
  f.body.length = r->length;
  f.body.op = static_cast<uint32_t>(r->op);
  if (data_out_bytes(r->op, r->length) > 0) f.hold = r;
  return f;
}

}  // namespace

TEST_CASE("data channel: forwarded requests carry their data both ways, and are answered once") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  // A write from a buffer of three pieces, 4,095 bytes in all (padded on
  // the wire), then a read and a flush.
  std::vector<std::string> pieces{std::string(1000, 'a'), std::string(3000, 'b'), std::string(95, 'c')};
  IoRequestPtr write = request_over(pieces, IoOp::write, 8192);
  REQUIRE(p.out->send_forward(forward_of(write, 1)));
  IoRequestPtr read = make_request();
  read->op = IoOp::read;
  read->volume = 7;
  read->offset = 4096;
  read->length = 6000;
  REQUIRE(p.out->send_forward(forward_of(read, 2)));
  IoRequestPtr flush = make_request();
  flush->op = IoOp::flush;
  flush->volume = 7;
  REQUIRE(p.out->send_forward(forward_of(flush, 3)));
  p.run_until([&] { return p.receiver.forwarded.size() == 3; });
  const auto& w = p.receiver.forwarded[0];
  CHECK(w.header.id == 1);
  CHECK(w.header.vdisk == 7);
  CHECK(w.header.epoch == 5);
  CHECK(w.body.offset == 8192);
  CHECK(w.data == pieces[0] + pieces[1] + pieces[2]);
  CHECK(p.receiver.forwarded[1].body.length == 6000);
  CHECK(p.receiver.forwarded[2].body.op == static_cast<uint32_t>(IoOp::flush));
  CHECK(p.out->forwards_unanswered() == 3);
  // The answers: the read's data from a buffer of two pieces.
  std::vector<std::string> answer{std::string(2000, 'x'), std::string(4000, 'y')};
  IoRequestPtr served = request_over(answer, IoOp::read, 4096);
  REQUIRE(p.in->send_forward_answer(2, 0, served, 6000));
  REQUIRE(p.in->send_forward_answer(1, 0, nullptr, 0));
  REQUIRE(p.in->send_forward_answer(3, EIO, nullptr, 0));
  // An answer this connection did not ask for.
  REQUIRE(p.in->send_forward_answer(99, 0, nullptr, 0));
  p.run_until([&] { return p.sender.answers.size() == 3 && p.out->stats().stale_answers == 1; });
  CHECK(p.sender.answers[1] == std::vector<int32_t>{0});
  CHECK(p.sender.answers[2] == std::vector<int32_t>{0});
  CHECK(p.sender.answers[3] == std::vector<int32_t>{EIO});
  CHECK(p.sender.answer_data[2] == answer[0] + answer[1]);
  CHECK(p.sender.answers.count(99) == 0);
  CHECK(p.out->window_used() == 0);
  CHECK(p.out->forwards_unanswered() == 0);
}

TEST_CASE("data channel: a forwarded compare-and-write carries both halves of its data") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  // What the range must hold, then what to write: 2 x 1,000 bytes.
  std::vector<std::string> halves{std::string(1000, 'e'), std::string(1000, 'n')};
  IoRequestPtr caw = request_over(halves, IoOp::compare_and_write, 512);
  caw->length = 1000;
  REQUIRE(p.out->send_forward(forward_of(caw, 4)));
  p.run_until([&] { return p.receiver.forwarded.size() == 1; });
  const auto& c = p.receiver.forwarded[0];
  CHECK(c.body.op == static_cast<uint32_t>(IoOp::compare_and_write));
  CHECK(c.body.length == 1000);
  CHECK(c.data == halves[0] + halves[1]);
  REQUIRE(p.in->send_forward_answer(4, EILSEQ, nullptr, 0));
  p.run_until([&] { return p.sender.answers.size() == 1; });
  CHECK(p.sender.answers[4] == std::vector<int32_t>{EILSEQ});
  // One whose buffer holds only one half is not sent.
  std::vector<std::string> half{std::string(1000, 'e')};
  IoRequestPtr short_one = request_over(half, IoOp::compare_and_write, 0);
  CHECK_FALSE(p.out->send_forward(forward_of(short_one, 5)));
  // An or-write carries its data, once.
  IoRequestPtr ored = request_over(half, IoOp::or_write, 4096);
  REQUIRE(p.out->send_forward(forward_of(ored, 6)));
  p.run_until([&] { return p.receiver.forwarded.size() == 2; });
  CHECK(p.receiver.forwarded[1].body.op == static_cast<uint32_t>(IoOp::or_write));
  CHECK(p.receiver.forwarded[1].data == half[0]);
}

TEST_CASE("data channel: a forwarded read's answer counts in the window, and a cut fails it once") {
  // Room for one 12 KiB read's answer, not two.
  Pair p(16 * 1024);
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  for (uint64_t id = 1; id <= 3; ++id) {
    IoRequestPtr read = make_request();
    read->op = IoOp::read;
    read->volume = 7;
    read->length = 12 * 1024;
    REQUIRE(p.out->send_forward(forward_of(read, id)));
  }
  for (int i = 0; i < 50; ++i) p.ring->poll();
  CHECK(p.out->forwards_unanswered() == 1);
  CHECK(p.out->stats().window_waits > 0);
  ::shutdown(p.fds[1], SHUT_RDWR);  // the peer goes away unanswering
  p.run_until([&] { return p.sender.closed; });
  REQUIRE(p.sender.answers.size() == 3);
  for (const auto& [id, got] : p.sender.answers) CHECK(got == std::vector<int32_t>{ECONNRESET});
}

TEST_CASE("data channel: a forward frame whose body does not match its request ends the connection") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  p.run_until([&] { return p.receiver.hellos.size() == 1; });
  struct {
    FrameHeader h;
    ForwardBody b;
  } frame;
  frame.h.type = static_cast<uint8_t>(FrameType::forward);
  frame.h.body_bytes = sizeof(ForwardBody);
  SECTION("an unknown op") { frame.b.op = static_cast<uint32_t>(IoOp::or_write) + 1; }
  SECTION("an or-write without its data") {
    frame.b.op = static_cast<uint32_t>(IoOp::or_write);
    frame.b.length = 8;
  }
  SECTION("a write without its data") {
    frame.b.op = static_cast<uint32_t>(IoOp::write);
    frame.b.length = 4096;
  }
  SECTION("a compare-and-write with one half of its data") {
    frame.b.op = static_cast<uint32_t>(IoOp::compare_and_write);
    frame.b.length = 8;
    frame.h.body_bytes = sizeof(ForwardBody) + 8;
  }
  SECTION("a request over 32 MiB") {
    frame.b.op = static_cast<uint32_t>(IoOp::read);
    frame.b.length = kMaxForwardBytes + 1;
  }
  SECTION("a range that wraps") {
    frame.b.op = static_cast<uint32_t>(IoOp::read);
    frame.b.offset = UINT64_MAX - 10;
    frame.b.length = 4096;
  }
  SECTION("a block status asking for no extents") {
    frame.b.op = static_cast<uint32_t>(IoOp::block_status);
    frame.b.length = 4096;
  }
  SECTION("a block status asking for more extents than a page holds") {
    frame.b.op = static_cast<uint32_t>(IoOp::block_status);
    frame.b.length = 4096;
    frame.b.flags = kMaxStatusExtents + 1;
  }
  SECTION("a block status over NBD's longest range") {
    frame.b.op = static_cast<uint32_t>(IoOp::block_status);
    frame.b.length = kMaxStatusRange + 1;
    frame.b.flags = 1;
  }
  REQUIRE(::write(p.fds[0], &frame, sizeof frame) == sizeof frame);
  const std::string data(frame.h.body_bytes - sizeof(ForwardBody), 'z');  // what the body says came
  if (!data.empty()) REQUIRE(::write(p.fds[0], data.data(), data.size()) == ssize_t(data.size()));
  p.run_until([&] { return p.receiver.closed; });
  CHECK(p.receiver.why.find("forward frame") != std::string::npos);
  CHECK(p.receiver.forwarded.empty());
}

TEST_CASE("data channel: a delayed end sends its frames late, in order") {
  Pair p;
  p.in->start();
  p.sender.delay_ms = 150;
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  for (uint64_t id = 1; id <= 5; ++id)
    REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(id * 10, 1, char(id), id), id)));
  // Nothing arrives within the delay.
  for (int i = 0; i < 100; ++i) p.ring->poll();
  if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(140))
    CHECK(p.receiver.hellos.empty());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (p.sender.answers.size() < 5 && std::chrono::steady_clock::now() < deadline) p.ring->poll();
  REQUIRE(p.sender.answers.size() == 5);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(150));
  CHECK(p.receiver.order == std::vector<uint64_t>{1, 2, 3, 4, 5});
  for (uint64_t id = 1; id <= 5; ++id) CHECK(p.sender.answers[id] == std::vector<int32_t>{0});
}

TEST_CASE("data channel: a copy sent from its blocks where they lie, more pieces than one call takes") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  // 300 blocks, each in memory of its own (as in their NVRAM slots): more
  // pieces than one sendmsg carries, so the frame leaves in several calls.
  constexpr uint32_t n = 300;
  auto blocks = std::make_shared<std::vector<std::vector<char>>>();
  std::vector<uint64_t> numbers, seqs;
  std::vector<const char*> where;
  for (uint32_t i = 0; i < n; ++i) {
    blocks->emplace_back(kBlockBytes, static_cast<char>(i % 251));
    numbers.push_back(1000 + i);
    seqs.push_back(1);
  }
  for (auto& b : *blocks) where.push_back(b.data());
  OutMirror m;
  m.origin = 1;
  m.vdisk = 7;
  m.id = 1;
  m.count = n;
  m.blocks = numbers.data();
  m.seqs = seqs.data();
  m.block_data = where.data();
  m.keep = blocks;
  REQUIRE(p.out->send_mirror(std::move(m)));
  p.run_until([&] { return p.sender.answers.size() == 1; });
  CHECK(p.sender.answers[1] == std::vector<int32_t>{0});
  REQUIRE(p.receiver.copies.size() == n);
  for (uint32_t i = 0; i < n; ++i)
    CHECK(p.receiver.copies[1000 + i] == static_cast<unsigned char>(i % 251) + 1000);
  CHECK(p.out->stats().sends > 1);
}

namespace {

// The numbers live in what the frame keeps (as a batch's do).
struct RefNumbers {
  std::vector<uint64_t> blocks, seqs;
};

OutMirrorRef ref_of(uint64_t id, uint64_t forward_id, std::vector<uint64_t> blocks,
                    std::vector<uint64_t> seqs) {
  auto numbers = std::make_shared<RefNumbers>(RefNumbers{std::move(blocks), std::move(seqs)});
  OutMirrorRef r;
  r.origin = 1;
  r.vdisk = 7;
  r.epoch = 3;
  r.id = id;
  r.forward_id = forward_id;
  r.count = static_cast<uint32_t>(numbers->blocks.size());
  r.blocks = numbers->blocks.data();
  r.seqs = numbers->seqs.data();
  r.keep = numbers;
  return r;
}

}  // namespace

// A copy of data the receiver forwarded: numbers only, in order with the
// other copies, answered like one, and failed once with its connection.
TEST_CASE("data channel: a copy by reference carries its numbers and no data, answered like a copy") {
  Pair p;
  p.in->start();
  REQUIRE(p.out->send_hello(make_hello(1, 0, 1, 1), fresh_nonce()));
  REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(10, 1, 'a', 1), 1)));
  REQUIRE(p.out->send_mirror_ref(ref_of(2, 77, {40, 41, 42}, {8, 8, 9})));
  REQUIRE(p.out->send_mirror(out_of(std::make_shared<Copy>(11, 1, 'b', 2), 3)));
  CHECK_FALSE(p.out->send_mirror_ref(ref_of(4, 77, {}, {})));
  OutMirrorRef too_many = ref_of(4, 77, {1}, {1});
  too_many.count = kMaxBlocks + 1;
  CHECK_FALSE(p.out->send_mirror_ref(std::move(too_many)));
  CHECK_FALSE(p.out->send_mirror_ref(ref_of(2, 78, {1}, {1})));  // id 2 is out already
  p.receiver.answer = ENOENT;
  p.run_until([&] { return p.sender.answers.size() == 3; });
  CHECK(p.receiver.order == std::vector<uint64_t>{1, 2, 3});
  REQUIRE(p.receiver.refs.size() == 1);
  const auto& r = p.receiver.refs[0];
  CHECK(r.forward_id == 77);
  CHECK(r.header.vdisk == 7);
  CHECK(r.header.epoch == 3);
  CHECK(r.header.origin == 1);
  CHECK(r.blocks == std::vector<uint64_t>{40, 41, 42});
  CHECK(r.seqs == std::vector<uint64_t>{8, 8, 9});
  CHECK(p.sender.answers[2] == std::vector<int32_t>{ENOENT});
  CHECK(p.out->window_used() == 0);
  // Its frame: the numbers, no block of data (the two copies carry one each).
  CHECK(p.out->stats().bytes_sent <
        2 * (kHeaderBytes + body_bytes_for(FrameType::mirror, 1)) + 3 * kHeaderBytes + 200);
  // Waiting for the window when the connection ends: failed once.
  REQUIRE(p.out->send_mirror_ref(ref_of(5, 80, {1}, {1})));
  p.out->close("cut");
  p.run_until([&] { return p.sender.closed; });
  CHECK(p.sender.answers[5] == std::vector<int32_t>{ECONNRESET});
}

namespace {

// This node's cache partition and forwarder, as the core's connections
// see them.
struct Partition final : MirrorEndpoint, ForwardEndpoint {
  int32_t store_status = 0;
  std::vector<std::string> stored;  // the data of each copy stored
  std::vector<uint64_t> held;       // forwarded writes acknowledged by their copy
  std::map<uint64_t, std::string> writes;  // forwarded writes waiting: id -> data at vdisk 0
  int32_t on_mirror(uint32_t, const MirrorIn& in) override {
    if (store_status == 0)
      stored.emplace_back(in.data, size_t{in.header->count} * kBlockBytes);
    return store_status;
  }
  void on_release(uint32_t, const ReleaseIn&) override {}
  void on_mirror_answer(uint64_t, int32_t) override {}
  void on_forward(ReplyTo, uint32_t, const ForwardIn&) override {}
  void on_forward_answer(const ForwardAnswerIn&) override {}
  const char* forwarded_data(uint64_t id, uint32_t vdisk, uint64_t offset,
                             uint64_t bytes) override {
    auto it = writes.find(id);
    if (it == writes.end() || vdisk != 7 || offset + bytes > it->second.size()) return nullptr;
    return it->second.data() + offset;
  }
  void copy_held(uint64_t id) override { held.push_back(id); }
};

}  // namespace

// The partner's end of a copy by reference: kept from the forwarded
// write's own data, and only a copy that was kept acknowledges the write.
TEST_CASE("data channel: a copy by reference is kept from the forwarded write, which it acknowledges") {
  auto ring = std::move(UringEngine::create(64).value());
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  PeerChannelsSetup setup;
  setup.ring = ring.get();
  setup.self = 2;
  Partition partition;
  std::string data(4 * kBlockBytes, 0);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i / kBlockBytes + 'p');
  partition.writes[77] = data;
  Sender owner;
  SessionKeys keys;
  keys.send.fill(1);
  keys.receive.fill(2);
  {
    PeerChannels channels(setup);
    channels.bind(static_cast<MirrorEndpoint*>(&partition));
    channels.bind(static_cast<ForwardEndpoint*>(&partition));
    channels.accept(UniqueFd(fds[1]), make_hello(1, 0, 1, 9), keys);
    DataChannel out(*ring, UniqueFd(fds[0]), owner, ChannelLimits{});
    out.seal(SessionKeys{keys.receive, keys.send});
    out.start();
    auto run_until = [&](auto done) {
      for (int i = 0; i < 100000 && !done(); ++i) ring->poll();
      REQUIRE(done());
    };
    REQUIRE(out.send_mirror_ref(ref_of(1, 77, {1, 2}, {5, 5})));  // kept
    run_until([&] { return owner.answers.size() == 1; });
    CHECK(owner.answers[1] == std::vector<int32_t>{0});
    REQUIRE(partition.stored.size() == 1);
    CHECK(partition.stored[0] == data.substr(kBlockBytes, 2 * kBlockBytes));
    CHECK(partition.held == std::vector<uint64_t>{77});
    partition.store_status = ENOSPC;  // not kept: the write waits
    REQUIRE(out.send_mirror_ref(ref_of(2, 77, {0}, {6})));
    REQUIRE(out.send_mirror_ref(ref_of(3, 78, {0}, {6})));         // no such write here
    REQUIRE(out.send_mirror_ref(ref_of(4, 77, {3, 5}, {6, 6})));   // not consecutive
    REQUIRE(out.send_mirror_ref(ref_of(5, 77, {3, 4}, {6, 6})));   // past its data
    run_until([&] { return owner.answers.size() == 5; });
    CHECK(owner.answers[2] == std::vector<int32_t>{ENOSPC});
    CHECK(owner.answers[3] == std::vector<int32_t>{ENOENT});
    CHECK(owner.answers[4] == std::vector<int32_t>{EINVAL});
    CHECK(owner.answers[5] == std::vector<int32_t>{ENOENT});
    CHECK(partition.held == std::vector<uint64_t>{77});
    CHECK(partition.stored.size() == 1);
    out.close("test over");
    channels.close_all();
    run_until([&] { return out.closed(); });
    for (int i = 0; i < 100; ++i) ring->poll();
  }
}

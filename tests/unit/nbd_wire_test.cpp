#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "hw/port/tcp.hpp"
#include "io/nbd/nbd_handshake.hpp"
#include "io/nbd/nbd_wire.hpp"

using namespace sve;
using namespace sve::nbd;

namespace {

class OneExport final : public ExportCatalog {
 public:
  std::optional<ExportInfo> find(const std::string& name) const override {
    if (name == "vd0") return ExportInfo{7, 1 << 20, "vd0", "", false};
    return std::nullopt;
  }
  std::vector<std::string> names() const override { return {"vd0"}; }
};

// A client end of a socketpair with the server's handshake on a thread.
struct Pair {
  int client = -1, server = -1;
  HandshakeResult result;
  std::thread thread;
  OneExport catalog;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    client = fds[0];
    server = fds[1];
    thread = std::thread([this] {
      result = run_handshake(server, catalog);
      if (!result.go) ::shutdown(server, SHUT_RDWR);
    });
    uint8_t hello[18];
    REQUIRE(recv_all(client, hello, sizeof hello));
    CHECK(get_u64(hello) == kNbdMagic);
    CHECK(get_u64(hello + 8) == kOptMagic);
    CHECK(get_u16(hello + 16) == (kFlagFixedNewstyle | kFlagNoZeroes));
  }
  ~Pair() {
    if (thread.joinable()) thread.join();
    ::close(client);
    ::close(server);
  }
  void send(const std::vector<uint8_t>& b) { REQUIRE(send_all(client, b.data(), b.size())); }
  void send_option(uint32_t option, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> b;
    put_u64(b, kOptMagic);
    put_u32(b, option);
    put_u32(b, static_cast<uint32_t>(data.size()));
    b.insert(b.end(), data.begin(), data.end());
    send(b);
  }
  // Returns (reply type, data).
  std::pair<uint32_t, std::vector<uint8_t>> read_reply(uint32_t option) {
    uint8_t head[20];
    REQUIRE(recv_all(client, head, sizeof head));
    CHECK(get_u64(head) == kOptReplyMagic);
    CHECK(get_u32(head + 8) == option);
    std::vector<uint8_t> data(get_u32(head + 16));
    if (!data.empty()) REQUIRE(recv_all(client, data.data(), data.size()));
    return {get_u32(head + 12), data};
  }
  bool server_closed() {
    uint8_t b;
    return ::recv(client, &b, 1, 0) == 0;
  }
};

std::vector<uint8_t> go_payload(const std::string& name, std::vector<uint16_t> infos = {}) {
  std::vector<uint8_t> d;
  put_u32(d, static_cast<uint32_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  put_u16(d, static_cast<uint16_t>(infos.size()));
  for (auto i : infos) put_u16(d, i);
  return d;
}

std::vector<uint8_t> client_flags(uint32_t f) {
  std::vector<uint8_t> b;
  put_u32(b, f);
  return b;
}

}  // namespace

TEST_CASE("request headers round-trip through the wire encoding") {
  Request r{kRequestMagic, kCmdFlagFua, kCmdWrite, 0x1122334455667788ull, 1ull << 40, 65536};
  uint8_t raw[kRequestBytes];
  encode_request(r, raw);
  Request d = decode_request(raw);
  CHECK(d.magic == kRequestMagic);
  CHECK(d.flags == kCmdFlagFua);
  CHECK(d.type == kCmdWrite);
  CHECK(d.cookie == 0x1122334455667788ull);
  CHECK(d.offset == 1ull << 40);
  CHECK(d.length == 65536);
}

TEST_CASE("errors map onto the NBD error set") {
  CHECK(to_wire_error(0, false) == 0);
  CHECK(to_wire_error(ERANGE, true) == kENOSPC);   // write past the end
  CHECK(to_wire_error(ERANGE, false) == kEINVAL);  // read past the end
  CHECK(to_wire_error(EIO, false) == kEIO);
  CHECK(to_wire_error(ENODEV, false) == kEIO);
  CHECK(to_wire_error(EDQUOT, true) == kENOSPC);
}

TEST_CASE("GO on a known export reports its size and flags and enters transmission") {
  Pair p;
  p.send(client_flags(kClientFixedNewstyle | kClientNoZeroes));
  p.send_option(kOptGo, go_payload("vd0", {kInfoBlockSize}));
  auto [t1, info] = p.read_reply(kOptGo);
  CHECK(t1 == kRepInfo);
  REQUIRE(info.size() == 12);
  CHECK(get_u16(info.data()) == kInfoExport);
  CHECK(get_u64(info.data() + 2) == (1u << 20));
  CHECK((get_u16(info.data() + 10) & kTxCanMultiConn));
  auto [t2, bs] = p.read_reply(kOptGo);
  CHECK(t2 == kRepInfo);
  CHECK(get_u16(bs.data()) == kInfoBlockSize);
  CHECK(get_u32(bs.data() + 10) == kMaxPayloadBytes);
  CHECK(p.read_reply(kOptGo).first == kRepAck);
  p.thread.join();
  CHECK(p.result.go);
  CHECK(p.result.chosen.volume == 7);
}

TEST_CASE("unknown exports, malformed options and LIST get replies, not hang-ups") {
  Pair p;
  p.send(client_flags(kClientFixedNewstyle));
  p.send_option(kOptInfo, go_payload("nope"));
  CHECK(p.read_reply(kOptInfo).first == kRepErrUnknown);
  p.send_option(kOptGo, {0, 0, 0, 9, 'x'});  // name longer than the option
  CHECK(p.read_reply(kOptGo).first == kRepErrInvalid);
  p.send_option(99, {});
  CHECK(p.read_reply(99).first == kRepErrUnsup);
  p.send_option(kOptList, {});
  auto [t, entry] = p.read_reply(kOptList);
  CHECK(t == kRepServer);
  CHECK(std::string(entry.begin() + 4, entry.end()) == "vd0");
  CHECK(p.read_reply(kOptList).first == kRepAck);
  p.send_option(kOptAbort, {});
  CHECK(p.read_reply(kOptAbort).first == kRepAck);
  p.thread.join();
  CHECK_FALSE(p.result.go);
}

TEST_CASE("a malformed handshake closes the connection") {
  SECTION("bad option magic") {
    Pair p;
    p.send(client_flags(kClientFixedNewstyle));
    std::vector<uint8_t> junk(16, 0x41);
    p.send(junk);
    p.thread.join();
    CHECK_FALSE(p.result.go);
    CHECK(p.result.reason == "bad option magic");
    CHECK(p.server_closed());
  }
  SECTION("oversized option") {
    Pair p;
    p.send(client_flags(kClientFixedNewstyle));
    std::vector<uint8_t> b;
    put_u64(b, kOptMagic);
    put_u32(b, kOptGo);
    put_u32(b, kMaxOptionBytes + 1);
    p.send(b);
    p.thread.join();
    CHECK(p.result.reason == "option too large");
  }
  SECTION("unknown client flags") {
    Pair p;
    p.send(client_flags(0x80));
    p.thread.join();
    CHECK_FALSE(p.result.go);
  }
}

TEST_CASE("the old EXPORT_NAME option ends the handshake with size and flags") {
  Pair p;
  p.send(client_flags(kClientFixedNewstyle));  // no NO_ZEROES: 124 zero bytes follow
  p.send_option(kOptExportName, {'v', 'd', '0'});
  uint8_t out[8 + 2 + 124];
  REQUIRE(recv_all(p.client, out, sizeof out));
  CHECK(get_u64(out) == (1u << 20));
  p.thread.join();
  CHECK(p.result.go);
}

namespace {

std::vector<uint8_t> meta_payload(const std::string& name, std::vector<std::string> queries) {
  std::vector<uint8_t> d;
  put_u32(d, static_cast<uint32_t>(name.size()));
  d.insert(d.end(), name.begin(), name.end());
  put_u32(d, static_cast<uint32_t>(queries.size()));
  for (const auto& q : queries) {
    put_u32(d, static_cast<uint32_t>(q.size()));
    d.insert(d.end(), q.begin(), q.end());
  }
  return d;
}

}  // namespace

TEST_CASE("structured replies and base:allocation are negotiated, in that order", "[nbd]") {
  Pair p;
  p.send(client_flags(kClientFixedNewstyle | kClientNoZeroes));
  // Meta contexts need structured replies first.
  p.send_option(kOptSetMetaContext, meta_payload("vd0", {"base:allocation"}));
  CHECK(p.read_reply(kOptSetMetaContext).first == kRepErrInvalid);
  p.send_option(kOptStructuredReply, {1});  // takes no data
  CHECK(p.read_reply(kOptStructuredReply).first == kRepErrInvalid);
  p.send_option(kOptStructuredReply, {});
  CHECK(p.read_reply(kOptStructuredReply).first == kRepAck);
  // LIST with no query names every context; an unknown namespace none.
  p.send_option(kOptListMetaContext, meta_payload("vd0", {}));
  auto [t1, listed] = p.read_reply(kOptListMetaContext);
  CHECK(t1 == kRepMetaContext);
  CHECK(std::string(listed.begin() + 4, listed.end()) == "base:allocation");
  CHECK(p.read_reply(kOptListMetaContext).first == kRepAck);
  p.send_option(kOptListMetaContext, meta_payload("vd0", {"qemu:dirty-bitmap:x"}));
  CHECK(p.read_reply(kOptListMetaContext).first == kRepAck);
  // Malformed: a query count the data cannot hold, a string past the end,
  // an unknown export.
  std::vector<uint8_t> lying = meta_payload("vd0", {});
  lying[lying.size() - 1] = 0xff;
  p.send_option(kOptSetMetaContext, lying);
  CHECK(p.read_reply(kOptSetMetaContext).first == kRepErrInvalid);
  p.send_option(kOptSetMetaContext, {0, 0, 0, 200, 'v'});
  CHECK(p.read_reply(kOptSetMetaContext).first == kRepErrInvalid);
  p.send_option(kOptSetMetaContext, meta_payload("nope", {"base:allocation"}));
  CHECK(p.read_reply(kOptSetMetaContext).first == kRepErrUnknown);
  // SET selects it, with its id.
  p.send_option(kOptSetMetaContext, meta_payload("vd0", {"base:allocation"}));
  auto [t2, set] = p.read_reply(kOptSetMetaContext);
  CHECK(t2 == kRepMetaContext);
  CHECK(get_u32(set.data()) == kAllocationContextId);
  CHECK(p.read_reply(kOptSetMetaContext).first == kRepAck);
  p.send_option(kOptGo, go_payload("vd0", {kInfoName, kInfoDescription}));
  auto [t3, info] = p.read_reply(kOptGo);
  CHECK(t3 == kRepInfo);
  CHECK((get_u16(info.data() + 10) & kTxSendDf));
  CHECK((get_u16(info.data() + 10) & kTxSendCache));
  CHECK((get_u16(info.data() + 10) & kTxSendFastZero));
  auto [t4, name] = p.read_reply(kOptGo);
  CHECK(t4 == kRepInfo);
  CHECK(get_u16(name.data()) == kInfoName);
  CHECK(std::string(name.begin() + 2, name.end()) == "vd0");
  CHECK(p.read_reply(kOptGo).first == kRepAck);  // no description for this export
  p.thread.join();
  REQUIRE(p.result.go);
  CHECK(p.result.negotiated.structured);
  CHECK(p.result.negotiated.allocation_context == kAllocationContextId);
}

TEST_CASE("without structured replies there is no DF, and contexts of another export do not count",
          "[nbd]") {
  SECTION("plain") {
    Pair p;
    p.send(client_flags(kClientFixedNewstyle | kClientNoZeroes));
    p.send_option(kOptGo, go_payload("vd0"));
    auto [t, info] = p.read_reply(kOptGo);
    CHECK(t == kRepInfo);
    CHECK_FALSE((get_u16(info.data() + 10) & kTxSendDf));
    CHECK(p.read_reply(kOptGo).first == kRepAck);
    p.thread.join();
    CHECK_FALSE(p.result.negotiated.structured);
    CHECK(p.result.negotiated.allocation_context == 0);
  }
  SECTION("a failed SET selects nothing") {
    Pair p;
    p.send(client_flags(kClientFixedNewstyle | kClientNoZeroes));
    p.send_option(kOptStructuredReply, {});
    CHECK(p.read_reply(kOptStructuredReply).first == kRepAck);
    p.send_option(kOptSetMetaContext, meta_payload("vd0", {"base:allocation"}));
    CHECK(p.read_reply(kOptSetMetaContext).first == kRepMetaContext);
    CHECK(p.read_reply(kOptSetMetaContext).first == kRepAck);
    p.send_option(kOptSetMetaContext, meta_payload("nope", {"base:allocation"}));
    CHECK(p.read_reply(kOptSetMetaContext).first == kRepErrUnknown);
    p.send_option(kOptGo, go_payload("vd0"));
    CHECK(p.read_reply(kOptGo).first == kRepInfo);
    CHECK(p.read_reply(kOptGo).first == kRepAck);
    p.thread.join();
    CHECK(p.result.negotiated.structured);
    CHECK(p.result.negotiated.allocation_context == 0);
  }
}

TEST_CASE("structured reply chunks encode as the protocol lays them out", "[nbd]") {
  uint8_t head[kChunkHeaderBytes];
  encode_chunk_header(kReplyFlagDone, kReplyTypeOffsetData, 0x0102030405060708ull, 4104, head);
  CHECK(get_u32(head) == kStructuredReplyMagic);
  CHECK(get_u16(head + 4) == kReplyFlagDone);
  CHECK(get_u16(head + 6) == kReplyTypeOffsetData);
  CHECK(get_u64(head + 8) == 0x0102030405060708ull);
  CHECK(get_u32(head + 16) == 4104);
  auto status = encode_block_status(1, {{4096, 0}, {8192, kStateHole | kStateZero}});
  REQUIRE(status.size() == 4 + 16);
  CHECK(get_u32(status.data()) == 1);
  CHECK(get_u32(status.data() + 12) == 8192);
  CHECK(get_u32(status.data() + 16) == 3);
  auto error = encode_error_chunk(kEINVAL, "no");
  REQUIRE(error.size() == 8);
  CHECK(get_u32(error.data()) == kEINVAL);
  CHECK(get_u16(error.data() + 4) == 2);
  MetaContextRequest parsed;
  CHECK(decode_meta_context_request(meta_payload("a", {"base:allocation", "x:y"}), parsed));
  CHECK(parsed.export_name == "a");
  CHECK(parsed.queries == std::vector<std::string>{"base:allocation", "x:y"});
  auto trailing = meta_payload("a", {});
  trailing.push_back(0);
  CHECK_FALSE(decode_meta_context_request(trailing, parsed));
  CHECK_FALSE(decode_meta_context_request({}, parsed));
  CHECK_FALSE(decode_meta_context_request({0, 0, 0x10, 0x01}, parsed));  // a name over 4 KiB
}

// The admin server as an input like any other: connections beyond the
// limit are refused with a line, finished ones are reaped, an idle one is
// closed, a handler's exception is an error reply, and running out of
// descriptors pauses the accept loop instead of ending it. Also the
// request schema on its own.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_schema.hpp"
#include "admin/admin_server.hpp"
#include "hw/port/tcp.hpp"

using namespace sve;
using nlohmann::json;

namespace {

struct Listening {
  UniqueFd fd;
  HostPortAddress address;
};

Listening listen_any() {
  auto fd = listen_tcp(HostPortAddress{"127.0.0.1", 0});
  REQUIRE(fd);
  sockaddr_in a{};
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return {std::move(fd.value()), HostPortAddress{"127.0.0.1", ntohs(a.sin_port)}};
}

// One line from `fd`, or "" on EOF / 5 s without one.
std::string read_line(int fd) {
  std::string line;
  char c;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return line;
    if (::recv(fd, &c, 1, 0) != 1 || c == '\n') return line;
    line.push_back(c);
  }
}

std::string ask(int fd, const std::string& line) {
  std::string out = line + "\n";
  REQUIRE(send_all(fd, out.data(), out.size()));
  return read_line(fd);
}

UniqueFd connect_to(const HostPortAddress& a) {
  auto fd = connect_tcp(a);
  REQUIRE(fd);
  return std::move(fd.value());
}

template <typename Cond>
bool eventually(Cond cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

TEST_CASE("the admin server bounds, reaps and times out its connections", "[admin]") {
  auto l = listen_any();
  AdminServer server(std::move(l.fd),
                     [](const std::string& line, const std::string&) -> std::string {
                       if (line == "throw") throw std::runtime_error("boom");
                       return "echo " + line;
                     },
                     AdminServerLimits{2, 300});
  server.start();
  UniqueFd a = connect_to(l.address), b = connect_to(l.address);
  CHECK(ask(a.get(), "one") == "echo one");
  CHECK(ask(b.get(), "two") == "echo two");
  // A third is refused with a line, and the two go on.
  UniqueFd c = connect_to(l.address);
  std::string refusal = read_line(c.get());
  CHECK(refusal.find("too many admin connections") != std::string::npos);
  CHECK(server.refused_connections() == 1);
  // A handler's exception is an error reply; the connection stays.
  auto reply = json::parse(ask(a.get(), "throw"));
  CHECK(reply["ok"] == false);
  CHECK(reply["error"].get<std::string>().find("boom") != std::string::npos);
  CHECK(ask(a.get(), "again") == "echo again");
  // A finished connection is reaped: room for another.
  b.reset();
  CHECK(eventually([&] { return server.open_connections() == 1; }));
  UniqueFd d = connect_to(l.address);
  CHECK(ask(d.get(), "four") == "echo four");
  // Idle past the limit: closed by the server, and reaped.
  CHECK(eventually([&] { return server.open_connections() == 0; }));
  CHECK(read_line(a.get()).empty());
  server.stop();
}

TEST_CASE("the admin server keeps accepting after running out of descriptors", "[admin]") {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime needs descriptors of its own (UBSan's checks
  // read the process's memory map) and reports the starved child instead.
  WARN("skipped under the sanitizers: it starves the process of descriptors");
  return;
#endif
  auto l = listen_any();
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The server, in a process where two more descriptors can be made (a
    // new one takes the lowest free number, which must be under the
    // limit): a third client at once makes accept fail with EMFILE.
    int lowest_free = 0;
    while (::fcntl(lowest_free, F_GETFD) >= 0) ++lowest_free;
    rlimit r{static_cast<rlim_t>(lowest_free + 2), static_cast<rlim_t>(lowest_free + 2)};
    ::setrlimit(RLIMIT_NOFILE, &r);
    AdminServer server(std::move(l.fd), [](const std::string& line, const std::string&) { return "echo " + line; },
                       AdminServerLimits{64, 60'000});
    server.start();
    ::pause();
    ::_exit(0);
  }
  l.fd.reset();
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(connect_to(l.address));
  // Some of them were accepted; the rest wait in the backlog.
  CHECK(ask(clients[0].get(), "first") == "echo first");
  // Two at a time are accepted: once the first six are gone, the last two
  // get the descriptors, and the loop went on through every EMFILE.
  for (int i = 0; i < 6; ++i) clients[static_cast<size_t>(i)].reset();
  CHECK(ask(clients[7].get(), "last") == "echo last");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST_CASE("the admin schema refuses what no handler can take, naming the field", "[admin]") {
  auto error = [](const std::string& line) {
    auto r = parse_admin_request(line);
    return r ? std::string() : r.error().message;
  };
  CHECK(error(R"({"cmd": 5})") == "field 'cmd': expected a command name");
  CHECK(error(R"({"name": "x"})") == "field 'cmd': missing");
  CHECK(error("[1]") == "a request is a JSON object");
  CHECK(error("{") == "the request is not valid JSON");
  CHECK(error(R"({"cmd": "vdisk.frob"})") == "unknown command 'vdisk.frob'");
  CHECK(error(R"({"cmd": "vdisk.list", "x": 1})") == "vdisk.list: unknown field 'x'");
  CHECK(error(R"({"cmd": "vdisk.create", "name": 5, "pool": "p", "size": 1})")
            .starts_with("field 'name': expected a name"));
  CHECK(error(R"({"cmd": "vdisk.create", "name": "v", "pool": "p", "size": [1]})")
            .starts_with("field 'size': expected a size"));
  CHECK(error(R"({"cmd": "vdisk.create", "name": "v", "pool": "p", "size": -4})")
            .starts_with("field 'size'"));
  CHECK(error(R"({"cmd": "vdisk.create", "name": "v", "pool": "p"})") == "field 'size': missing");
  CHECK(error(R"({"cmd": "node.add", "id": 4294967297, "address": "h:1"})")
            .starts_with("field 'id': expected a whole number from 1"));
  CHECK(error(R"({"cmd": "iogrp.create", "name": "g", "nodes": [1]})") ==
        "field 'nodes': expected two node ids");
  CHECK(error(R"({"cmd": "chaos.start", "rate": 1e400})").starts_with("the request is not"));
  CHECK(error(R"({"cmd": "chaos.start", "rate": 0})").starts_with("field 'rate'"));
  CHECK(error(R"({"cmd": "iogrp.cache_state", "id": 1})") ==
        "unknown command 'iogrp.cache_state'");
  // A name cut for the reply is cut between characters, never inside one.
  std::string long_cmd(63, 'a');
  long_cmd += "\xc3\xa9tc";
  CHECK(json::parse(admin_error(error(json{{"cmd", long_cmd}}.dump())))["error"]
            .get<std::string>()
            .ends_with("a...'"));
  CHECK(error(R"({"cmd": "vdisk.create", "name": "v", "pool": "p", "size": "1G"})").empty());
  CHECK(error(R"({"cmd": "pool.create", "name": "p", "mdisks": ["a", "b"]})").empty());
}

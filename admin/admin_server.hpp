#pragma once
// Serves the admin API: a thread accepts connections, one thread per client
// reads request lines and answers them through `handler`. Admin traffic is
// rare and simplicity wins over speed, but the port is an input like any
// other: connections are bounded (one beyond the limit gets a refusal
// line), finished ones are reaped, an idle one is closed, a line over
// kMaxAdminLineBytes closes that connection only, and an accept error such
// as EMFILE pauses the loop instead of ending it. The handler's exceptions
// are answered as errors; none ends a thread.
//
// With a `secure` handshake (admin_stream.hpp: TLS) every connection must
// complete it first, on its own thread; one that does not (a plain-text
// client, a wrong certificate) is closed, and logged.
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include "admin/admin_stream.hpp"
#include "util/fd.hpp"

namespace sve {

struct AdminServerLimits {
  uint32_t max_connections = 64;
  uint32_t idle_timeout_ms = 60'000;  // between requests of one connection
};

class AdminServer {
 public:
  // `peer`: the client's numeric IP address (who sent it, for the rule
  // that only loopback clients may send commands while no user exists).
  using Handler =
      std::function<std::string(const std::string& request_line, const std::string& peer)>;

  AdminServer(UniqueFd listener, Handler handler, AdminServerLimits limits = {},
              AdminStreamAccept secure = {});
  ~AdminServer();
  void start();
  void stop();

  // For tests and `node stats`: connections open now, refused so far.
  uint32_t open_connections();
  uint64_t refused_connections() const { return refused_.load(); }

 private:
  struct Client {
    int fd = -1;
    std::thread thread;
    bool done = false;  // serve() returned; join and close
  };
  void accept_loop();
  void serve(Client* client);
  void reap_locked();
  std::string answer(const std::string& line, const std::string& peer);

  UniqueFd listener_;
  Handler handler_;
  AdminServerLimits limits_;
  AdminStreamAccept secure_;
  std::thread acceptor_;
  std::mutex mu_;
  std::list<Client> clients_;
  bool stopping_ = false;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace sve

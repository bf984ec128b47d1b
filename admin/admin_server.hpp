#pragma once
// Serves the admin API: a thread accepts connections, one thread per client
// reads request lines and answers them through `handler` (which forwards to
// the config actor). Admin traffic is rare; simplicity wins over speed here.
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include "util/fd.hpp"

namespace sve {

class AdminServer {
 public:
  using Handler = std::function<std::string(const std::string& request_line)>;

  AdminServer(UniqueFd listener, Handler handler);
  ~AdminServer();
  void start();
  void stop();

 private:
  void accept_loop();
  void serve(int fd);

  UniqueFd listener_;
  Handler handler_;
  std::thread acceptor_;
  std::mutex mu_;
  std::list<std::pair<int, std::thread>> clients_;
  bool stopping_ = false;
};

}  // namespace sve

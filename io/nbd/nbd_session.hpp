#pragma once
// One NBD connection in the transmission phase. The reader (run) turns wire
// requests into IoRequests for the top of the facility stack, receiving write
// payloads straight into the request's buffer; completions come back through
// send_reply, which writes the reply with one gathered write.
//
// At most `max_in_flight` requests are outstanding per connection: beyond
// that the reader stops reading, so a flood of requests slows the host down
// instead of growing the node's memory.
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "io/nbd/nbd_handshake.hpp"
#include "io/protocol.hpp"
#include "util/fd.hpp"

namespace sve::nbd {

struct SessionStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
};

class NbdSession {
 public:
  NbdSession(int fd, ExportInfo info, IoServer& server, IoClient& completions,
             uint32_t max_in_flight = 256);

  // Reads and submits until the client disconnects, sends something
  // malformed, or shutdown() is called; then waits for its outstanding
  // requests to complete. Returns why it ended.
  std::string run();

  // Completion of a request submitted by run(). Any thread.
  void send_reply(IoRequestPtr done);

  // Unblocks run() from another thread.
  void shutdown();

  const ExportInfo& export_info() const { return info_; }

 private:
  bool send_error_reply(uint64_t cookie, uint32_t error);
  void wait_for_slot();
  void drain();

  int fd_;
  ExportInfo info_;
  IoServer& server_;
  IoClient& completions_;
  const uint32_t max_in_flight_;
  std::mutex write_mu_;  // replies come from the reader and the completer
  std::mutex mu_;
  std::condition_variable cv_;
  uint32_t in_flight_ = 0;
  SessionStats stats_;
};

}  // namespace sve::nbd

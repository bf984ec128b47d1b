#pragma once
// One NBD connection in the transmission phase, driven by its core's
// io_uring ring: no thread of its own, nothing blocks. The session is a
// state machine over three kinds of ring operations:
//
//   receive a request header -> get a request context (and a buffer) from
//   the connection's pool accounts -> receive a write's payload straight
//   into the buffer -> submit to the top of the facility stack -> ...
//
// and, on completions, queue the reply; replies leave in gathered sendmsg
// calls, read data straight from the buffers, one send in flight at a time
// so that replies never interleave on the stream.
//
// Over TLS the same machine runs on the TLS records instead of the socket
// (nbd_session_tls.cpp): the ring moves ciphertext, a request's payload is
// decrypted straight into its buffer and a read's data encrypted from it.
//
// Flow control: while the connection waits for a context or buffer pages,
// it stops receiving, so a host that floods the node fills its own TCP
// window and slows down; nothing is failed and memory stays bounded.
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "io/buffer/buffer_pool.hpp"
#include "io/nbd/nbd_handshake.hpp"
#include "io/nbd/nbd_wire.hpp"
#include "io/service_gate.hpp"
#include "io/pool/object_pool.hpp"
#include "io/protocol.hpp"
#include "io/reactor/core_io.hpp"
#include "io/tls/tls_records.hpp"

namespace sve::nbd {

class NbdSession;

// One outstanding host request: its context, and where its reply waits.
// Taken together with the request context, under the same unit.
struct Slot : public IoClient,
              public ObjectPool<Slot>::Hook,
              public boost::intrusive::list_base_hook<> {
  NbdSession* session = nullptr;
  IoRequestPtr request;    // null for an error reply without a request
  uint64_t cookie = 0;
  uint64_t offset = 0;     // of the request (a structured read's data chunk)
  uint16_t type = 0;       // its NBD command
  uint32_t error = 0;      // wire error of the reply
  bool with_data = false;  // a successful read: the reply carries its data
  bool owns_unit = false;  // no request was made: the slot holds the unit
  bool fast_zero = false;  // a write-zeroes that may fail with ENOTSUP
  bool no_fragment = false;  // a read with DF: its data in one chunk
  // The reply's header: a simple reply, or a structured chunk's header and
  // the start of its payload (a data chunk's offset, an error's code).
  uint8_t header[kChunkHeaderBytes + kOffsetDataBytes];
  uint8_t header_bytes = 0;
  std::vector<uint8_t> extra;  // the rest of a chunk's payload (block status)
  // A read sent as several chunks (data and holes): each part is bytes of
  // `extra` (chunk headers), then bytes of the request's data.
  struct Part {
    uint32_t extra_from = 0, extra_bytes = 0;
    uint64_t data_from = 0, data_bytes = 0;
  };
  std::vector<Part> parts;
  void io_done(IoRequestPtr done) override;
};

using SlotPool = ObjectPool<Slot>;

struct SessionLimits {
  uint32_t max_in_flight = 256;        // request contexts one connection may hold
  uint64_t buffer_reserve_pages = 32;  // guaranteed to each connection if available
  uint64_t buffer_limit_pages = 0;     // 0: a quarter of the front end's pages,
                                       // or one largest request if more
  // The node's lease. Closed: a new connection opens no vdisk (the port
  // says why); requests on open ones wait at the top of the stack for the
  // node to serve again, as long as it holds them (forward_facility.hpp).
  const ServiceGate* gate = nullptr;
};

struct SessionStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t waits = 0;  // times the connection stopped receiving for memory
  uint64_t direct_receives = 0;  // receives served without the ring
};

class NbdSession {
 public:
  // `top` is the top of the core's facility stack; `closed` runs (on the
  // core) once the connection has ended and every request has completed.
  // It is called from inside the session's own callbacks, so it must not
  // destroy the session there and then: it posts that for later. With
  // `tls`, the connection speaks TLS records on `fd` (STARTTLS was done).
  NbdSession(int fd, ExportInfo info, Negotiated negotiated, CoreIo& core, SlotPool& slots,
             IoServer& top, const SessionLimits& limits,
             std::function<void(NbdSession*)> closed,
             std::unique_ptr<TlsRecords> tls = nullptr);
  ~NbdSession();

  void start();
  // Ends the connection as a client disconnect would. Any thread.
  void shutdown();

  int fd() const { return fd_; }
  const ExportInfo& export_info() const { return info_; }
  const SessionStats& stats() const { return stats_; }
  const std::string& end_reason() const { return reason_; }

 private:
  friend struct Slot;
  enum class Phase { header, context, buffer, payload, drain, closing };

  struct Op final : RingHandler {
    NbdSession* session = nullptr;
    void (NbdSession::*on_done)(int) = nullptr;
    void on_ring_complete(int res) override { (session->*on_done)(res); }
  };
  struct ContextWaiter final : PoolWaiter {
    NbdSession* session = nullptr;
    bool on_grant() override;
  };
  struct PagesWaiter final : PoolWaiter {
    NbdSession* session = nullptr;
    uint64_t bytes = 0;
    bool on_grant() override;
  };

  static constexpr unsigned kPumpBudget = 32;
  using Done = void (NbdSession::*)(int);
  // The stream under the session: the socket, or TLS records on it.
  // Receives into `iov` without waiting: the bytes, 0 at the end, -errno
  // (-EAGAIN: nothing there yet).
  ssize_t receive_now(iovec* iov, int n);
  // Receives into `iov` through the ring; `done` gets what receive_now
  // would (never -EAGAIN). `flags`: the socket's (MSG_WAITALL).
  void receive_later(iovec* iov, int n, Done done, int flags);
  // Sends send_iov_ through the ring; on_sent follows.
  void send_now();
  // Over TLS (nbd_session_tls.cpp).
  ssize_t tls_receive_now(iovec* iov, int n);
  void tls_receive_later(iovec* iov, int n, Done done);
  void on_tls_received(int res);
  void tls_send();
  void on_tls_sent(int res);
  // Moves the send past `bytes` that went out: true once all of it has.
  bool consume_sent(size_t bytes);
  void sent_all();
  // Sends what GnuTLS put in the outbox on its own (a key update's answer).
  void tls_flush();
  void receive_header();
  void post_header_receive();
  void on_header(int res);
  void got_context();
  void got_buffer(BufferRef buffer);
  void receive_payload();
  void on_payload(int res);
  // A refused write's payload, read and dropped so the connection goes on.
  void drain_payload();
  void on_drained(int res);
  void drained();
  // Whether the request just received is refused before it reaches the
  // stack, and with which wire error.
  uint32_t refusal() const;
  void encode_reply(Slot& slot);
  // A structured read with holes, as OFFSET_HOLE and OFFSET_DATA chunks.
  void encode_read_chunks(Slot& slot);
  void dispatch();
  void reply_later(Slot& slot);
  void send_replies();
  void on_sent(int res);
  void give_back(Slot& slot);
  void end(std::string reason);
  void maybe_finish();

  int fd_;
  ExportInfo info_;
  Negotiated negotiated_;
  CoreIo& core_;
  SlotPool& slots_;
  IoServer& top_;
  std::function<void(NbdSession*)> closed_;
  PoolAccount requests_account_;
  PoolAccount buffers_account_;
  ContextWaiter context_waiter_;
  PagesWaiter pages_waiter_;

  Phase phase_ = Phase::header;
  uint8_t header_[kRequestBytes];
  size_t header_have_ = 0;
  Request request_{};
  Slot* slot_ = nullptr;  // the request being received
  uint64_t payload_have_ = 0;
  uint64_t drain_left_ = 0;
  std::unique_ptr<uint8_t[]> drain_buffer_;  // made on the first refused write
  iovec recv_iov_[Buffer::kMaxSegments];
  msghdr recv_msg_{};
  Op recv_op_, send_op_;
  std::unique_ptr<TlsRecords> tls_;
  Op tls_recv_op_, tls_send_op_;
  iovec* tls_recv_iov_ = nullptr;  // where a receive through the ring goes
  int tls_recv_n_ = 0;
  Done tls_recv_done_ = nullptr;
  bool recv_in_flight_ = false;
  bool pumping_ = false;        // inside receive_header's loop
  bool header_wanted_ = false;  // the loop should receive another header

  boost::intrusive::list<Slot> reply_queue_;  // completed, not yet sent
  boost::intrusive::list<Slot> sending_;      // in the send in flight
  std::unique_ptr<iovec[]> send_iov_;
  int send_iov_count_ = 0;
  int send_iov_first_ = 0;
  msghdr send_msg_{};
  bool send_in_flight_ = false;

  uint32_t outstanding_ = 0;  // slots taken and not yet given back
  bool finished_ = false;
  std::string reason_;
  SessionStats stats_;
};

}  // namespace sve::nbd

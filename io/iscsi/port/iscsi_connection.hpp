#pragma once
// One iSCSI connection in the full-feature phase, driven by its core's
// io_uring ring as an NBD session is (io/nbd/nbd_session.hpp): no thread of
// its own, nothing blocks. Its login ran on the port's handshake thread.
//
// Receiving is a loop over PDUs: a basic header (and what follows it), then
// its data segment, straight into where it belongs: a write's data into its
// request's pooled buffer at the offset the PDU names, anything else into
// a small vector. A command takes a task, and with it a request context,
// from the connection's account; while none is free the connection stops
// receiving, so an initiator that floods the node fills its own TCP window.
//
// Sending is a queue of PDUs: a read's Data-In straight from its buffer
// (the status in the last), R2Ts, responses; gathered into one sendmsg,
// one in flight at a time.
//
// A session may have several connections to this node (its portal group),
// all served on the session's core: they share its CmdSN window (a command
// may overtake one another connection still carries), its I_T nexus and
// unit attentions, and task management and logout reach across them
// (SessionShared). Each command is answered on the connection it came by.
// Error recovery level 0: a PDU that breaks the protocol (a digest that
// does not match, a data segment out of place) closes its connection; its
// tasks end, and the initiator recovers the session by logging in again.
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "io/buffer/buffer_pool.hpp"
#include "io/iscsi/iscsi_pdu.hpp"
#include "io/iscsi/iscsi_replies.hpp"
#include "io/iscsi/iscsi_text.hpp"
#include "io/iscsi/iscsi_units.hpp"
#include "io/pool/object_pool.hpp"
#include "io/protocol.hpp"
#include "io/reactor/core_io.hpp"
#include "io/scsi/scsi_reservations.hpp"
#include "io/scsi/unit_attentions.hpp"
#include "io/service_gate.hpp"

namespace sve::iscsi {

class IscsiConnection;

// Runs a task on a core's reactor thread.
using CorePost = std::function<void(unsigned core, std::function<void()> task)>;

// Where a logical unit's requests go: the facility stack of the core that
// serves its vdisk (vdisk id modulo cores: its cache partition, its thin
// and copy state live there).
struct CoreRoute {
  unsigned home = 0;               // the connection's core
  std::vector<IoServer*> tops;     // each core's stack top, by core
  CorePost post;                   // to reach another core
  unsigned core_of(uint32_t volume) const {
    return tops.empty() ? 0 : static_cast<unsigned>(volume % tops.size());
  }
};

// Something the initiator sent that the target answers: a SCSI command
// (with its request, buffer and data transfer) or a NOP-Out, Text, Task
// Management or Logout request. Each holds a unit of the connection's
// request account (through its request, or itself when it has none).
struct Task : public IoClient,
              public ObjectPool<Task>::Hook,
              public boost::intrusive::list_base_hook<> {
  IscsiConnection* connection = nullptr;
  Bhs command;                // the request's header
  IoRequestPtr request;       // a SCSI command the stack serves
  bool in_stack = false;      // submitted, not yet completed
  bool owns_unit = false;     // no request: the task holds the unit
  bool counted = false;       // takes a place in the command window
  // A SCSI command's outcome, when answered here or once the stack is done.
  scsi::Status status = scsi::Status::good;
  scsi::Sense sense;
  std::vector<uint8_t> data;  // Data-In made here; a control PDU's data
  uint32_t expected = 0;      // ExpectedDataTransferLength
  uint64_t transfer = 0;      // bytes the command itself moves (SPDTL)
  uint32_t volume = 0;        // its logical unit's vdisk
  // VERIFY: the read is checked, not sent; with `compare`, against the
  // `data_out` bytes the initiator sent (first in the buffer, the read
  // after them).
  bool verify = false;
  bool compare = false;
  uint32_t data_out = 0;
  // More than one request (io/scsi's Flow): WRITE SAME and UNMAP go as
  // pieces of `ranges`, one request after the other (the same request
  // context, sent again); GET LBA STATUS and MODE SELECT are answered
  // from what came back or came in.
  scsi::Flow flow = scsi::Flow::one;
  bool unmap = false;
  bool mode_ten = false;
  uint32_t allocation = 0;
  std::vector<scsi::LbaRange> ranges;
  size_t range_at = 0;        // the range being done
  uint64_t range_done = 0;    // its bytes sent so far
  // A write's Data-Out: the bytes in so far (in order), the buffer's part
  // of them (the rest is dropped), what was asked for by R2T and how many
  // R2Ts are out.
  uint32_t received = 0;
  uint32_t buffer_bytes = 0;
  uint32_t asked = 0;
  uint32_t unsolicited = 0;
  uint32_t r2t_sn = 0;
  uint32_t r2ts_out = 0;
  uint32_t ttt = 0;
  uint32_t data_sn = 0;       // the next Data-Out's DataSN in its sequence
  bool awaiting_data = false;
  // Ended by task management: its response is never sent.
  bool aborted = false;
  // Ended by another nexus (its PREEMPT AND ABORT, or a LUN or target
  // reset): answered TASK ABORTED (not sent to the stack if it is not there
  // yet); `draining` while the stack still has it.
  bool ended_by_other = false;
  // A miscompare's offset into the Data-Out, for its sense data's
  // INFORMATION field (COMPARE AND WRITE, VERIFY).
  std::optional<uint32_t> sense_information;
  bool draining = false;
  bool finished = false;      // its response is queued (or it has none)
  uint32_t queued = 0;        // its PDUs in the send queue
  Task* waiter = nullptr;     // a task management or logout task waiting for it
  uint32_t waiting_for = 0;   // (such a task) how many it waits for
  // Reservation changes it asked the cluster for and waits on (a reset's
  // or a logout's end of SPC-2 reservations): the connection stays until
  // they are answered.
  uint32_t cluster_waits = 0;
  bool released = false;      // (a logout) its nexus's SPC-2 reservations are asked to end
  // Its place in its nexus's task set (SAM-5 8.6; a SCSI command, from its
  // arrival until it is given back): its task attribute, CmdSN and LUN,
  // and whether it is held, ready to start, until older tasks end
  // (iscsi_task_set.cpp).
  uint8_t attribute = 0;  // a SCSI Command's flags' low bits (kAttributeMask)
  uint32_t cmd_sn = 0;
  bool immediate = false;
  uint16_t lun = 0;
  bool in_set = false;
  bool held = false;
  void io_done(IoRequestPtr done) override;
};
using TaskPool = ObjectPool<Task>;

// Task attributes (SAM-5 8.6), as a SCSI Command's flags carry them.
// Untagged and reserved values count as SIMPLE.
inline constexpr uint8_t kAttributeMask = 0x07;
inline constexpr uint8_t kOrdered = 2;
inline constexpr uint8_t kHeadOfQueue = 3;
inline constexpr uint8_t kAca = 4;  // refused: this target has no ACA

// What the connections of one session share, on the session's core.
struct SessionShared {
  SessionShared(uint32_t exp_cmd_sn, uint32_t depth) : window(exp_cmd_sn, depth) {}
  CommandWindow window;
  uint32_t window_used = 0;  // counted commands not yet answered, on any connection
  scsi::UnitAttentions attentions;  // of the session's I_T nexus
  std::vector<IscsiConnection*> connections;
  // Its task set's ORDERED tasks, and its tasks held for older ones
  // (IscsiConnection::may_start); a look at the held ones is posted.
  uint32_t ordered_in_set = 0;
  uint32_t held = 0;
  bool release_posted = false;
};

struct ConnectionSetup {
  SessionParams params;          // as negotiated at login
  // The session it belongs to (none: a session of its own, made here).
  std::shared_ptr<SessionShared> session;
  uint16_t cid = 0;              // its connection ID in the session
  uint32_t exp_cmd_sn = 0;       // from the login
  uint32_t stat_sn = 0;          // the next StatSN
  uint32_t command_window = 128; // commands the initiator may have queued
  std::vector<Unit> units;       // by LUN
  std::string target_name;
  std::string initiator;
  uint32_t max_in_flight = 256;  // request contexts the connection may hold
  uint64_t buffer_reserve_pages = 32;
  const ServiceGate* gate = nullptr;  // closed: I/O fails NOT READY (closed_state)
  // For this long after the gate closed the node's port is transitioning
  // (the next generation forming: hosts retry), after it unavailable.
  uint64_t transition_ms = 0;
  // SendTargets in a normal session: this target's portals.
  std::function<std::vector<TextPair>(const std::string& value)> send_targets;
  // A LUN reset of `vdisk` (or a target reset: `all`) through this
  // connection, by task management function `tmf`: the port tells the
  // node's other connections (a unit attention for each nexus) and the
  // other nodes. True: the function's response waits for reset_told(tmf)
  // (the other nodes have been told). On the connection's core.
  std::function<bool(IscsiConnection* from, Task* tmf, uint32_t vdisk, bool all)> on_reset;
  // This connection's I_T nexus: its initiator port and the node's target
  // port (reservations are kept by nexus).
  Nexus nexus;
  // A reservation request of this nexus for `vdisk`: the cluster applies it
  // and the port calls reservation_done(task) on the connection's core
  // (`task` null: nobody waits).
  std::function<void(IscsiConnection* from, Task* task, uint32_t vdisk,
                     const ReservationRequest& request)>
      on_reservation;
  // The tasks a PREEMPT AND ABORT ended that the stack still had (set_units
  // said it began waiting for them) are all back. On the connection's core.
  std::function<void()> on_preempt_drained;
  // A Logout names a connection of this session that is not here: whether
  // it is one whose join was answered and that is still on its way to this
  // core (it is then closed on arrival, and counts as logged out).
  std::function<bool(uint16_t cid)> log_out_arriving;
};

struct ConnectionStats {
  uint64_t commands = 0;
  uint64_t errors = 0;  // commands answered with other than GOOD
  uint64_t waits = 0;   // times the connection stopped receiving for memory
  uint64_t r2ts = 0;
  uint64_t remote = 0;  // requests served by another core's stack
};

class IscsiConnection {
 public:
  // `closed` runs on the core once the connection has ended and every task
  // has finished; it is called from inside the connection's callbacks, so
  // it must post the connection's destruction for later.
  IscsiConnection(int fd, ConnectionSetup setup, CoreIo& core, TaskPool& tasks,
                  CoreRoute route, std::function<void(IscsiConnection*)> closed);
  ~IscsiConnection();

  void start();
  // Ends the connection as an initiator's disconnect would. Any thread.
  void shutdown();

  int fd() const { return fd_; }
  const std::string& initiator() const { return setup_.initiator; }
  const std::vector<Unit>& units() const { return setup_.units; }
  // The LUNs' vdisks changed (a size, a flag; LUNs added or unmapped): on
  // the core. A new capacity and a changed inventory are unit attentions
  // for the initiator; an unmapped LUN's commands find no LUN. A
  // PREEMPT AND ABORT of this nexus's registration ends its tasks for the
  // unit; true if some of them are still in the stack: the connection
  // calls on_preempt_drained once they are back.
  bool set_units(std::vector<Unit> units);
  // A reset elsewhere: a unit attention for each LUN of `vdisk` (or all).
  void unit_attention(uint32_t vdisk, bool all, const scsi::Sense& sense);
  // Another nexus reset the LUNs of `vdisk` (or the target: `all`): a unit
  // attention for each, and their tasks end, answered TASK ABORTED (SAM-5:
  // a reset aborts every nexus's tasks). `done` runs, on the core, once
  // none of them is left in the stack (at once if none is); it must not
  // take the port's lock.
  void reset_elsewhere(uint32_t vdisk, bool all, std::function<void()> done);
  // The other nodes know of the reset `tmf` made (ConnectionSetup::on_reset).
  void reset_told(Task& tmf);
  // The cluster applied a reservation request of `task`'s (on_reservation).
  void reservation_done(Task& task, const ReservationOutcome& outcome);
  const Nexus& nexus() const { return setup_.nexus; }
  const SessionShared* session() const { return session_.get(); }
  uint16_t cid() const { return setup_.cid; }
  const ConnectionStats& stats() const { return stats_; }
  const std::string& end_reason() const { return reason_; }

  // (For Task, on the connection's core.)
  void completed(Task& task);

 private:
  enum class Phase { header, task, buffer, data, closing };

  struct RingOp final : RingHandler {
    IscsiConnection* connection = nullptr;
    void (IscsiConnection::*on_done)(int) = nullptr;
    void on_ring_complete(int res) override { (connection->*on_done)(res); }
  };
  struct TaskWaiter final : PoolWaiter {
    IscsiConnection* connection = nullptr;
    bool on_grant() override;
  };
  struct PagesWaiter final : PoolWaiter {
    IscsiConnection* connection = nullptr;
    uint64_t bytes = 0;
    bool on_grant() override;
  };
  // A PDU waiting to be sent: its header (and digest), where its data
  // lies (a task's buffer or its `data`), its padding and data digest.
  struct OutPdu {
    uint8_t head[kBhsBytes + kDigestBytes];
    uint8_t head_bytes = 0;
    uint8_t tail_bytes = 0;
    uint8_t tail[3 + kDigestBytes];
    bool from_buffer = false;
    bool last = false;  // the task's last: it may be given back once sent
    Task* task = nullptr;
    uint32_t from = 0, length = 0;
  };
  // What the data segment being received is for.
  enum class Sink { command, data_out, control, discard };

  static constexpr unsigned kPumpBudget = 32;
  static constexpr int kMaxIov = 1024;

  // Receiving (iscsi_connection.cpp).
  ssize_t receive_now(iovec* iov, int n);
  void receive_later(iovec* iov, int n, void (IscsiConnection::*done)(int));
  void receive_header();
  void on_header_bytes(int res);
  void on_header();
  // The data segment of the PDU just in (its layout in layout_), into the
  // buffer of `task` from `buffer_at` as far as `buffer_room`, else into
  // `data` (control) or dropped; then on_data.
  void receive_data(Sink sink, Task* task, uint64_t buffer_at, uint64_t buffer_room);
  void continue_data();
  void on_data_bytes(int res);
  // Moves the receive past `bytes`: true once all of it is in.
  bool received(size_t bytes);
  void on_data();
  bool data_digest_ok() const;
  // Sending.
  void queue(Task* task, const Bhs& header, bool from_buffer, uint32_t from, uint32_t length,
             bool last);
  void send_queued();
  void on_sent(int res);
  void give_back(Task& task);
  void end(std::string reason);
  void maybe_finish();
  Numbers numbers();

  // Commands (iscsi_commands.cpp).
  void begin_task();
  void got_task();
  void begin_scsi(Task& t);
  void plan_scsi(Task& t, const uint8_t* cdb, scsi::Plan& plan);
  std::optional<scsi::AccessState> closed_state() const;
  void got_buffer(BufferRef buffer);
  void scsi_data_in(Task& t);
  // Task attributes (SAM-5 8.6): a command ready to start starts, or waits
  // (held) until the older tasks of its task set let it.
  void proceed(Task& t);
  bool may_start(const Task& t) const;
  void unhold(Task& t);
  void leave_set(Task& t);
  void post_release();
  static void release_held(SessionShared& session);
  void start_io(Task& t);
  void submit(Task& t);
  bool begin_write_same(Task& t);
  bool begin_unmap(Task& t);
  void answer_mode_select(Task& t);
  void begin_reservation(Task& t);
  // Asks the cluster to end the SPC-2 reservations `request` (a reset, a
  // logout) ends on the vdisk (all: every unit's) for `waiter`; how many.
  uint32_t end_spc2_reservations(Task& waiter, uint32_t vdisk, bool all,
                                 ReservationRequest::Kind kind);
  std::vector<uint8_t> parameter_list(Task& t);
  bool next_piece(Task& t);
  void lba_status_in(Task& t);
  uint64_t buffer_bytes_for(const Task& t) const;
  const Unit* unit_of(uint64_t lun_field) const;
  void ask_for_data(Task& t);
  void begin_data_out();
  void data_out_in(Task& t);
  void control_data_in(Task& t);
  void conclude(Task& t);
  void answer(Task& t);
  void respond_nop(Task& t);
  void respond_text(Task& t);
  void task_management(Task& t);
  void reset(Task& tmf, uint8_t function, uint64_t lun_field);
  void logout(Task& t);
  void abort(Task& target, Task& by);
  void end_for_other(uint16_t lun);
  void when_drained(std::function<void()> done);
  void answer_ended(Task& t);
  void release_waiter(Task& t);
  void forget_waiter(Task& by);
  void waited(Task& waiter);  // one thing a task management function waited for is over
  void maybe_logout();
  void answer_logout(Task& t, uint8_t response);
  void settle(Task& t);  // given back once finished and sent
  void reject(RejectReason reason);
  Task* find_live(uint32_t itt);

  int fd_;
  ConnectionSetup setup_;
  CoreIo& core_;
  TaskPool& tasks_;
  CoreRoute route_;
  std::function<void(IscsiConnection*)> closed_;
  PoolAccount requests_account_;
  PoolAccount buffers_account_;
  TaskWaiter task_waiter_;
  PagesWaiter pages_waiter_;
  Digests digests_;
  std::shared_ptr<SessionShared> session_;
  CommandWindow& window_;    // the session's
  uint32_t& window_used_;    // the session's
  uint32_t stat_sn_;
  uint32_t next_ttt_ = 1;

  Phase phase_ = Phase::header;
  uint8_t header_[kBhsBytes + 255 * 4 + kDigestBytes];
  size_t header_have_ = 0;
  size_t header_want_ = kBhsBytes;
  Bhs bhs_;
  PduLayout layout_;
  Task* current_ = nullptr;  // the task whose PDU is being received
  Sink sink_ = Sink::discard;
  iovec recv_iov_[Buffer::kMaxSegments + 4];
  iovec data_iov_[Buffer::kMaxSegments + 4];  // the data segment, for its digest
  int data_n_ = 0;
  int recv_n_ = 0;
  int recv_first_ = 0;
  msghdr recv_msg_{};
  uint8_t tail_in_[3 + kDigestBytes];
  std::unique_ptr<uint8_t[]> scratch_;  // data that goes nowhere
  std::vector<uint8_t> control_data_;
  RingOp recv_op_, send_op_;
  bool recv_in_flight_ = false;
  bool pumping_ = false;
  bool header_wanted_ = false;

  boost::intrusive::list<Task> live_;  // every task taken, until given back
  std::vector<Task*> awaiting_;        // writes waiting for Data-Out
  Task* logout_ = nullptr;             // a logout waiting for the others
  // Tasks another nexus ended that the stack still has, and who waits for
  // them all to be back (a preemption's port, a reset's issuer).
  uint32_t draining_ = 0;
  std::vector<std::function<void()>> drained_waiters_;

  // The send queue: its first out_in_flight_ PDUs are in the send in
  // flight, the rest wait. (A deque: the send points into its PDUs, and
  // adding to a deque moves none of them.)
  std::deque<OutPdu> out_;
  size_t out_in_flight_ = 0;
  std::unique_ptr<iovec[]> send_iov_;
  int send_iov_count_ = 0;
  int send_iov_first_ = 0;
  msghdr send_msg_{};
  bool send_in_flight_ = false;
  bool close_after_send_ = false;

  uint32_t outstanding_ = 0;  // tasks taken and not yet given back
  bool finished_ = false;
  std::string reason_;
  ConnectionStats stats_;
  scsi::UnitAttentions& attentions_;  // the session's I_T nexus's
};

}  // namespace sve::iscsi

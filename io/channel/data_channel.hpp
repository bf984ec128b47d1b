#pragma once
// One connection of the node-to-node data channel: a TCP stream between two
// nodes that carries the mirrored cache's copies, their answers and their
// releases, and host requests forwarded to the node that owns their vdisk
// and their answers. It is driven by a core's io_uring ring like a
// host connection: no thread of its own, nothing blocks, no CAF.
//
// Sending: frames wait in order; copies are sent from the memory they
// already live in (a gathered sendmsg of header and body pieces, several
// frames per call), and the small frames (answers, releases) ride in the
// same calls. A forwarded write is sent from its request's buffer the
// same way. Flow control is a window of bytes sent or asked for and not yet
// answered (a copy's, a forwarded write's data, a forwarded read's): beyond
// it, frames wait here (and so the writers above, whose copies are not
// answered), so a slow partner slows its writers and nothing grows without
// bound. Frames never overtake each other: a release
// never arrives before the copy it releases.
//
// A copy by reference (mirror_ref) names blocks whose data the receiver
// itself forwarded to this end: numbers only, answered like a copy.
//
// Receiving: into one buffer, frames parsed in place and handed to the
// handler as views (a copy's data goes from that buffer straight to its
// non-volatile slot). Every header is checked (channel_wire.hpp) before use;
// a bad frame ends the connection.
//
// Sealed (once seal() ran, right after the handshake): every frame leaves
// with a tag over its header and body and every frame must arrive with
// one (frame_seal.hpp); a frame whose tag fails ends the connection, so
// nothing changed or injected on the path is ever handled. The tag is
// computed when the frame first joins a send, from the memory it is sent
// from: no copy.
//
// A connection's answers belong to it: an answer for a copy or request this
// connection did not send (a stale one, from before a reconnection) is
// ignored. When the connection ends, every copy and forwarded request it
// had not had answered is failed to its sender (ECONNRESET), exactly once;
// the sender sends it again on another path, and the receiver keeps the
// newest version of each block.
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "io/channel/channel_auth.hpp"
#include "io/channel/channel_wire.hpp"
#include "io/channel/frame_seal.hpp"
#include "io/protocol.hpp"
#include "io/uring/uring_engine.hpp"
#include "util/fd.hpp"

namespace sve::channel {

// A copy as it arrived, pointing into the receive buffer (valid during the
// call only).
struct MirrorIn {
  const FrameHeader* header;
  const uint64_t* blocks;  // header->count of each
  const uint64_t* seqs;
  const char* data;        // header->count * kBlockBytes
};

// Copies of blocks whose data this end forwarded to the sender (its
// request `forward_id`): the numbers only, pointing into the receive buffer.
struct MirrorRefIn {
  const FrameHeader* header;
  uint64_t forward_id;
  const uint64_t* blocks;  // header->count, consecutive (checked by the receiver)
  const uint64_t* seqs;
};

struct ReleaseIn {
  const FrameHeader* header;
  const uint64_t* blocks;
  const uint64_t* seqs;
};

// A host request forwarded by the peer, pointing into the receive buffer
// (valid during the call only): a write's data is body->length bytes.
struct ForwardIn {
  const FrameHeader* header;
  const ForwardBody* body;
  const char* data;
};

// The answer to a request this end forwarded: a read's data (`bytes` of
// it) points into the receive buffer, valid during the call only.
struct ForwardAnswerIn {
  uint64_t id = 0;
  int32_t status = 0;
  const char* data = nullptr;
  uint64_t bytes = 0;
  uint64_t miscompare_at = 0;  // a compare-and-write's (EILSEQ)
};

// What a channel's owner does with what arrives. Called on the core's
// thread from the ring's completions, never from inside a send_* call.
class ChannelHandler {
 public:
  virtual ~ChannelHandler() = default;
  // The first frame of an accepted connection; false refuses it.
  virtual bool on_hello(const FrameHeader& hello) {
    (void)hello;
    return true;
  }
  // The listener's answer to this end's hello (channel_auth.hpp): its
  // nonce and proof, kNonceBytes + kProofBytes at `body`. True once it
  // holds (the handler then sends its own proof); false ends the
  // connection.
  virtual bool on_challenge(const FrameHeader& challenge, const uint8_t* body) {
    (void)challenge;
    (void)body;
    return false;
  }
  // A peer's copies; the status is sent back as the answer.
  virtual int32_t on_mirror(const MirrorIn& in) {
    (void)in;
    return 95;  // EOPNOTSUPP: this end does not hold copies
  }
  // A peer's copies of data this end forwarded to it; answered the same way.
  virtual int32_t on_mirror_ref(const MirrorRefIn& in) {
    (void)in;
    return 95;  // EOPNOTSUPP
  }
  virtual void on_release(const ReleaseIn& in) { (void)in; }
  // The answer to a copy this end sent (0 or an errno), or ECONNRESET when
  // the connection ended first (the copy may or may not be held there).
  virtual void on_mirror_answer(uint64_t id, int32_t status) {
    (void)id;
    (void)status;
  }
  // A request the peer forwarded; the answer goes back later by
  // send_forward_answer() (or not at all, if the connection ends first).
  virtual void on_forward(const ForwardIn& in) { (void)in; }
  // The answer to a request this end forwarded, or ECONNRESET when the
  // connection ended first (the request may or may not have run there).
  virtual void on_forward_answer(const ForwardAnswerIn& in) { (void)in; }
  // How long this end must not read now (the chaos monkey's stall): the
  // channel asks again every 20 ms at most.
  virtual uint64_t receive_hold_ms() { return 0; }
  // How late a frame queued now must leave (the chaos monkey's delay).
  virtual uint64_t send_delay_ms() { return 0; }
  // The connection has ended, after every copy got its answer above. The
  // channel may be destroyed from here on (not inside this call).
  virtual void on_closed(const std::string& reason) { (void)reason; }
};

// A copy to send. The arrays must stay valid until the channel drops
// `keep` (once the frame has left, or the connection ended).
struct OutMirror {
  uint32_t origin = 0;
  uint32_t vdisk = 0;
  uint64_t epoch = 0;
  uint64_t id = 0;
  uint32_t count = 0;
  const uint64_t* blocks = nullptr;
  const uint64_t* seqs = nullptr;
  const char* data = nullptr;               // count * kBlockBytes, or null and:
  const char* const* block_data = nullptr;  // each block's kBlockBytes where it lies
  std::shared_ptr<const void> keep;
};

// A copy by reference: the receiver forwarded these blocks' data to this
// end as its request `forward_id` and still holds it there. The numbers
// are sent from where they lie (`keep` holds them until the frame left).
struct OutMirrorRef {
  uint32_t origin = 0;
  uint32_t vdisk = 0;
  uint64_t epoch = 0;
  uint64_t id = 0;
  uint64_t forward_id = 0;
  uint32_t count = 0;
  const uint64_t* blocks = nullptr;  // consecutive
  const uint64_t* seqs = nullptr;
  std::shared_ptr<const void> keep;
};

// A host request to forward. Its buffer is sent from where it lies; `hold`
// keeps it until the frame has left.
struct OutForward {
  uint32_t origin = 0;
  uint32_t vdisk = 0;
  uint64_t id = 0;
  uint64_t generation = 0;  // of the sender's route table
  ForwardBody body;
  IoRequestPtr hold;  // a write's data: hold->buffer from hold->buffer_offset
};

struct ChannelLimits {
  uint64_t window_bytes = 16ull << 20;  // bytes sent or asked for, not yet answered
  // The first frame this end must receive is a hello (an accepted
  // connection); a connection this end made gets none.
  bool expect_hello = false;
};

struct ChannelStats {
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t sends = 0;          // sendmsg calls (frames per call = batching)
  uint64_t receives = 0;
  uint64_t window_waits = 0;   // times a copy or request waited for the window
  uint64_t stale_answers = 0;  // answers for copies this connection did not send
  uint64_t tampered = 0;       // frames whose tag failed (the connection ended)
};

class DataChannel {
 public:
  DataChannel(UringEngine& ring, UniqueFd fd, ChannelHandler& handler, ChannelLimits limits = {});
  // Only once closed() (no ring operation may still point here).
  ~DataChannel();
  DataChannel(const DataChannel&) = delete;
  DataChannel& operator=(const DataChannel&) = delete;

  // Starts receiving.
  void start();
  // From here on the frames this end queues carry tags under keys.send,
  // and those it parses must carry tags under keys.receive: called once,
  // when the handshake is done (before start() on the listener's side; in
  // on_challenge() on the caller's, after queueing the proof).
  void seal(const SessionKeys& keys);
  bool sealed() const { return opener_.has_value(); }
  // Queue a frame; false (and nothing queued) once the channel is closing.
  // The handshake's frames (channel_auth.hpp): this end's hello with its
  // nonce, and its proof.
  bool send_hello(const FrameHeader& hello, const Nonce& nonce);
  bool send_proof(const PeerMac& proof);
  bool send_mirror(OutMirror copy);
  bool send_mirror_ref(OutMirrorRef copy);
  bool send_release(uint32_t origin, uint32_t vdisk, std::vector<uint64_t> blocks,
                    std::vector<uint64_t> seqs);
  bool send_forward(OutForward request);
  // The answer to the peer's forwarded request `id`: a read's data is
  // `bytes` from request->buffer at request->buffer_offset (kept until sent).
  bool send_forward_answer(uint64_t id, int32_t status, IoRequestPtr request, uint64_t bytes);

  // Ends the connection: what was not answered is failed, then on_closed.
  void close(const std::string& reason);
  bool closing() const { return closing_; }
  bool closed() const { return closed_; }

  uint64_t window_used() const { return window_used_; }
  size_t frames_waiting() const { return waiting_.size() + sending_.size(); }
  size_t copies_unanswered() const { return unanswered_.size(); }
  size_t forwards_unanswered() const { return forwards_out_.size(); }
  const ChannelStats& stats() const { return stats_; }

 private:
  // The answer to a copy (mirror or mirror_ref) that arrived.
  void answer_copy(const FrameHeader& h, int32_t status);

  struct Out {
    FrameHeader header;
    ForwardBody forward;  // a forward frame's fixed part (sent after the header)
    uint64_t forward_id = 0;  // a copy by reference's first word (after the header)
    boost::container::small_vector<iovec, 4> body;  // the rest of the body
    uint64_t bytes = 0;   // header and body
    uint64_t window = 0;  // what it takes of the window (copies, forwards)
    uint64_t ready_ms = 0;  // not sent before (a delay fault)
    std::shared_ptr<const void> keep;
    IoRequestPtr hold;    // a forwarded request, or the one answered
    std::vector<uint64_t> owned;  // a release's blocks, then its seqs
    bool tagged = false;  // it carries a tag (queued once sealed)
    bool tag_made = false;
    uint8_t tag[kTagBytes];
  };
  struct Op final : RingHandler {
    DataChannel* channel = nullptr;
    void (DataChannel::*on_done)(int) = nullptr;
    void on_ring_complete(int res) override { (channel->*on_done)(res); }
  };

  bool queue(Out out);
  void add_buffer(Out& out, const IoRequest& request, uint64_t bytes);
  bool handle_forward(const FrameHeader& h, const char* body);
  bool handle_forward_answer(const FrameHeader& h, const char* body);
  void admit();
  void pump();
  void sent(int res);
  void receive();
  void received(int res);
  void held(int res);
  void delayed(int res);
  // Frames complete in the receive buffer, handled; false if one was bad.
  bool parse();
  bool handle(const FrameHeader& h, const char* body);
  void make_tag(Out& out);
  void maybe_finish_close();

  UringEngine& ring_;
  UniqueFd fd_;
  ChannelHandler& handler_;
  ChannelLimits limits_;
  Op recv_op_, send_op_, hold_op_, delay_op_;
  __kernel_timespec hold_for_{}, delay_for_{};
  bool recv_busy_ = false, send_busy_ = false;
  bool closing_ = false, closed_ = false;
  bool hello_seen_ = false;
  std::string reason_;

  std::deque<Out> waiting_;  // not yet within the window
  std::deque<Out> sending_;  // within it, not yet (wholly) sent
  uint64_t front_sent_ = 0;  // bytes of sending_.front() already sent
  std::vector<iovec> iov_;
  msghdr msg_{};
  uint64_t window_used_ = 0;
  // What is out and not answered, by id (-> its bytes in the window): the
  // maps' nodes come from a pool that keeps them, so that a request costs
  // no heap allocation once the peak is reached.
  std::pmr::unsynchronized_pool_resource nodes_;
  std::pmr::unordered_map<uint64_t, uint64_t> unanswered_{&nodes_};   // copies
  std::pmr::unordered_map<uint64_t, uint64_t> forwards_out_{&nodes_};  // forwarded requests

  std::optional<FrameSealer> sealer_;
  std::optional<FrameOpener> opener_;
  std::vector<char> in_;  // the receive buffer; frames start 8-aligned
  size_t have_ = 0;
  ChannelStats stats_;
};

}  // namespace sve::channel

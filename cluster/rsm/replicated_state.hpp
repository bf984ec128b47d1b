#pragma once
// Replicated state machines (RSMs) over the committed event stream, with
// the paper's two persistent copies of cluster state.
//
// Every committed event is applied twice: to copy A, which is then written
// durably, and to copy B, written durably too. A crash at any point leaves
// the copies at most one event apart, and on restart the copy that got
// further wins and the other is re-derived from it; events committed after
// it are applied again from the log. Either way the state lands on an event
// boundary, never in the middle of one.
//
// RSMs reach the I/O side of the node only through responses that pass the
// call gate: a response goes out only during the second application, only
// on the node it is addressed to, and only while that node is online (holds
// a lease). RSMs and I/O modules share no data structures.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/protocol/types.hpp"

namespace sve::cluster {

// One copy of the cluster state: each RSM's state, as bytes, and the last
// event applied to it.
struct StateCopy {
  uint64_t seq = 0;
  std::map<std::string, std::string> states;  // RSM name -> its state
  bool operator==(const StateCopy&) const = default;
  MSGPACK_DEFINE(seq, states);
};

class CopyStore {
 public:
  virtual ~CopyStore() = default;
  virtual void write_copy(int which, const StateCopy& copy) = 0;  // 0 = A, 1 = B; durable
  virtual StateCopy read_copy(int which) = 0;
};

struct Response {
  NodeId target = 0;
  std::string body;
};

// A distributed facility's state machine. apply() must be deterministic: it
// sees only the event (its payload, and the members of the generation that
// commits it) and its own state, and may ask for responses.
class Rsm {
 public:
  virtual ~Rsm() = default;
  virtual std::string name() const = 0;
  virtual void apply(uint64_t seq, const Entry& event, std::string& state,
                     std::vector<Response>& responses) = 0;
};

class ReplicatedState {
 public:
  ReplicatedState(NodeId self, CopyStore& store, std::function<bool()> online,
                  std::function<void(uint64_t seq, const Response&)> deliver);

  void add(Rsm& rsm) { rsms_.push_back(&rsm); }
  // Reads both copies and settles on the one that got further.
  void recover();
  // Applies committed event `seq` (the next one) twice.
  void apply(uint64_t seq, const Entry& entry);
  // Replaces the state with a snapshot of another node's (a node that had
  // fallen behind the log), copy A first, then B. No responses: its events
  // were answered where they were applied.
  void restore(const StateCopy& copy);
  // The wire form of a copy, for snapshots.
  static std::string encode(const StateCopy& copy);
  static std::optional<StateCopy> decode(const std::string& bytes);

  uint64_t applied() const { return copy_[1].seq; }
  const StateCopy& state() const { return copy_[1]; }

 private:
  void apply_to(int which, uint64_t seq, const Entry& entry, bool gate_open);

  NodeId self_;
  CopyStore& store_;
  std::function<bool()> online_;
  std::function<void(uint64_t, const Response&)> deliver_;
  std::vector<Rsm*> rsms_;
  StateCopy copy_[2];
};

}  // namespace sve::cluster

#pragma once
// What the protocol core takes from outside: a monotonic clock, a way to
// send a message, and durable storage. The node gives it real ones; the
// simulator gives it a virtual clock, a lossy network and a store that
// survives a simulated crash.
#include <cstdint>
#include <map>
#include <string>

#include "cluster/protocol/types.hpp"

namespace sve::cluster {

// Everything a node must find again after a crash or power loss.
struct Durable {
  uint64_t incarnation = 0;  // bumped at every start
  // The cluster this node belongs to (empty: none yet, a fresh node) and its
  // configured nodes, as the last committed membership change left them.
  std::string cluster;
  NodeSet nodes;
  uint64_t nodes_seq = 0;  // the committed event that set them
  GenId gen;                 // the last generation this node joined
  NodeSet members;           // its members
  // The last generation this node knows to have opened (served). A new
  // generation needs a majority of it: attempts that never opened prove
  // nothing about who might still be serving.
  GenId established;
  NodeSet established_members;
  // The generation whose install this node acknowledged (a member) or which
  // it opened (the boss). A generation opens only once every member has
  // acknowledged its install, so one this node joined but never installed
  // cannot have opened; one it installed may have.
  GenId installed;
  NodeSet installed_members;
  std::map<uint64_t, Entry> log;  // entries base+1 and on
  uint64_t committed = 0;    // entries 1..committed are committed
  uint64_t base = 0;         // entries up to here were applied and dropped
  MSGPACK_DEFINE_MAP(incarnation, cluster, nodes, nodes_seq, gen, members, established,
                     established_members, installed, installed_members, log, committed, base);
};

// The quorum device: a small record on a shared disk that breaks the tie
// when a generation splits into two exact halves (see cluster_core.hpp).
struct QuorumRecord {
  NodeId owner = 0;
  uint64_t counter = 0;  // bumped by every write
  GenId gen;             // the last generation that opened, as its boss wrote
  GenId attempt;         // the last tie-break attempt that installed a log
  bool claiming = false; // written by a claimant, not yet a holder
  NodeSet gen_members;   // the members of `gen`
  MSGPACK_DEFINE(owner, counter, gen, attempt, claiming, gen_members);
};

class Env {
 public:
  virtual ~Env() = default;
  virtual uint64_t now_ms() = 0;  // this node's own monotonic clock
  virtual void send(NodeId to, Message message) = 0;
  // Writes `state` durably before returning (the simulator keeps a copy).
  virtual void persist(const Durable& state) = 0;
  virtual Durable load() = 0;
  // The quorum device, where the cluster has one. Reads and writes are
  // synchronous and durable.
  virtual bool has_quorum_device() { return false; }
  virtual QuorumRecord read_quorum() { return {}; }
  virtual void write_quorum(const QuorumRecord&) {}
  // The host's cluster state, as applied up to the committed point (for a
  // node that has dropped those entries), and installing one received from
  // the boss (the node had not got that far). Durable before returning.
  virtual std::string snapshot() { return {}; }
  virtual void restore(uint64_t seq, const std::string& state) {}
};

}  // namespace sve::cluster

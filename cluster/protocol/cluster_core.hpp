#pragma once
// The cluster protocol of one node (the paper's cluster operating
// environment), free of threads, sockets and clocks of its own: the host
// calls tick() every heartbeat interval and receive() for each message, and
// gives it time, a network and durable storage through Env.
//
//   * Heartbeats carry each node's link-state database (every node's view:
//     whom it hears from); the partition rule (partition.hpp) turns the
//     database into a candidate partition.
//   * When every member of a candidate advertises the same candidate for a
//     settle time, and it holds a majority of the latest generation any of
//     them joined, its lowest-numbered node (the boss) forms a new
//     generation: members persist it, send their logs; the boss merges them
//     (an event held by no member of the new generation was never
//     committed), installs the merged log on every member, waits out the
//     leases of nodes left behind, and opens the generation.
//   * Events are ordered by the boss and committed in two phases: prepare
//     (every member persists and votes), then commit once all have voted.
//   * Quorum device (optional): when a generation splits into two exact
//     halves, the half whose boss holds the device goes on. The boss of an
//     open generation holds it by rewriting its record every
//     quorum_renew_ms; a claimant writes its own record, waits
//     quorum_claim_ms (longer than a renewal period), and owns the device
//     only if its record is still there, so a live holder always wins. Two
//     halves share no node, so the device also stands in for the node they
//     would share: it records the last generation that opened and the last
//     tie-break attempt, and a tie-break generation numbers itself above
//     both.
//   * Leases: a member's lease runs from when the boss sent the prepare of
//     an event it sees committed (the commit says how long ago, on the
//     boss's clock); the boss commits a renewal event every lease/4. A node
//     without a valid lease serves nothing, and learns that on its own.
//
// docs/cluster-protocol.md has the message sequences and the invariants the
// simulator checks.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "cluster/protocol/env.hpp"
#include "cluster/protocol/types.hpp"

namespace sve::cluster {

struct CoreConfig {
  uint64_t heartbeat_ms = 20;     // tick interval
  uint64_t failure_ms = 120;      // a peer silent this long leaves the view
  uint64_t settle_ms = 60;        // a candidate must hold this long
  uint64_t lease_ms = 600;
  double lease_margin = 1.15;     // for clock-rate error and message delay
  uint64_t retransmit_ms = 40;
  uint64_t form_timeout_ms = 500; // a generation not open by then is abandoned
  uint64_t quorum_renew_ms = 60;   // the device holder rewrites its record
  uint64_t quorum_claim_ms = 200;  // a claimant waits this long before checking
  // Committed entries kept in the log; older ones are dropped once applied
  // (a node that needs them gets a snapshot instead). 0: keep everything.
  uint64_t keep_entries = 256;
  // A proposal not yet seen committed is sent again this often (and at
  // once in a new generation); the boss takes it once. Given up after
  // propose_give_up_ms (0: never), when the admin who asked has been told
  // it timed out.
  uint64_t propose_resend_ms = 200;
  uint64_t propose_give_up_ms = 15000;
};

class ClusterCore {
 public:
  // `nodes`: a cluster configured from the start (the simulator's). A node
  // of a cluster built by admin commands passes none: it founds one with
  // found() or is drawn into one by a member whose heartbeats list it.
  ClusterCore(NodeId self, NodeSet nodes, Env& env, CoreConfig config = {});

  void start();  // loads durable state; call once
  // Makes a fresh node the first node of cluster `cluster`. False if it
  // already belongs to one.
  bool found(const std::string& cluster);
  // A committed membership change (event `seq`): the configured nodes are
  // now `nodes`; an older change than the one in force is ignored. A node
  // that finds itself removed stops taking part and serves nothing (it
  // keeps its state, to catch up if it is added again).
  void set_nodes(NodeSet nodes, uint64_t seq);
  void tick();
  void receive(NodeId from, const Message& message);
  // Proposes an event (forwarded to the boss). False when this node has no
  // quorum; true means accepted for ordering, not yet committed. The node
  // sends it again until it sees it committed (a message lost, a boss that
  // died before anyone else held it, a generation change), and the boss
  // orders a payload it already holds only once, so each payload must be
  // unique (the host's carry their origin and request number).
  bool propose(std::string payload);
  // Proposals sent and not yet seen committed.
  size_t proposals_pending() const { return proposals_.size(); }
  // Holds an event until this node opens a generation as its boss: the
  // founding node's first event, proposed before it has a quorum.
  void queue_until_open(std::string payload) { queued_.push_back(std::move(payload)); }

  // Called in order for every committed event, on the node's thread.
  std::function<void(uint64_t seq, const Entry& entry)> on_commit;


  NodeId self() const { return self_; }
  GenId generation() const { return durable_.gen; }
  const NodeSet& members() const { return durable_.members; }
  bool open() const { return phase_ == Phase::open; }
  bool is_boss() const { return open() && durable_.gen.boss == self_; }
  bool lease_valid() { return open() && env_.now_ms() < lease_until_; }
  bool has_quorum() { return lease_valid(); }
  uint64_t lease_until() const { return lease_until_; }
  uint64_t committed() const { return durable_.committed; }
  const Durable& durable() const { return durable_; }
  const NodeSet& candidate() const { return candidate_; }
  const NodeSet& nodes() const { return durable_.nodes; }
  const std::string& cluster() const { return durable_.cluster; }
  // A configured node of a cluster (not fresh, not removed).
  bool in_cluster() const {
    return std::binary_search(durable_.nodes.begin(), durable_.nodes.end(), self_);
  }
  // Peers heard from lately (in this node's view), for status displays.
  const NodeSet& view() { return views_[self_].nodes; }

 private:
  enum class Phase { idle, forming, installing, joined, open };
  struct Peer {
    NodeSet candidate;
    GenId gen;        // its established generation
    NodeSet members;  // and that generation's members
    GenId joined;     // the last generation it joined
    bool open = false;  // and whether it serves in it
    uint64_t heard_at = 0;
    bool heard = false;
  };

  bool may_succeed(const NodeSet& members, bool tiebreak) const;
  NodeSet counted(const NodeSet& members) const;
  bool holds_quorum_device(uint64_t now, GenId half_of);
  bool still_holds(const QuorumRecord& r) const;
  void renew_quorum_device(uint64_t now);
  void update_view(uint64_t now);
  void maybe_form(uint64_t now);
  void start_generation(uint64_t now, const NodeSet& members, GenId latest);
  void retransmit(uint64_t now);
  void finish_forming(uint64_t now);
  void try_open(uint64_t now);
  void append(std::string payload, uint64_t now);
  void order(std::string payload, uint64_t now);
  bool holds(const std::string& payload) const;
  void resend_proposals(uint64_t now);
  void settle_proposal(const std::string& payload);
  // A snapshot stands for events this node never applied one by one: which
  // of its proposals they hold is unknown, so none is resent (its admin
  // hears it timed out; it may have been committed).
  void forget_proposals() { proposals_.clear(); }
  void try_commit(uint64_t now);
  void commit_upto(uint64_t seq);
  void compact();
  GenAck make_ack(GenId gen);
  void broadcast(const Message& m);
  void persist() { env_.persist(durable_); }

  void on_heartbeat(NodeId from, const Heartbeat& m, uint64_t now);
  void on_new_gen(NodeId from, const NewGen& m);
  void on_gen_ack(NodeId from, const GenAck& m, uint64_t now);
  void on_install(NodeId from, const Install& m);
  void on_install_ack(NodeId from, const InstallAck& m, uint64_t now);
  void on_prepare(NodeId from, const Prepare& m);
  void on_vote(NodeId from, const Vote& m, uint64_t now);
  void on_commit_msg(NodeId from, const Commit& m, uint64_t now);
  void renew(uint64_t now);
  void on_renew(NodeId from, const Renew& m);
  void on_renewed(NodeId from, const Renewed& m, uint64_t now);
  void on_lease(NodeId from, const Lease& m, uint64_t now);
  bool adopt(const Heartbeat& m);

  NodeId self_;
  NodeSet founding_;  // the configured nodes given at construction
  Env& env_;
  CoreConfig cfg_;
  Durable durable_;
  Phase phase_ = Phase::idle;

  std::map<NodeId, View> views_;
  std::map<NodeId, uint64_t> last_heard_;
  std::map<NodeId, Peer> peers_;
  NodeSet candidate_;
  uint64_t candidate_since_ = 0;

  // Boss, forming a generation.
  uint64_t form_started_ = 0;
  uint64_t opened_at_ = 0;
  uint64_t open_not_before_ = 0;  // UINT64_MAX until every member has joined
  bool left_out_ = false;         // the generation being formed leaves someone out
  uint64_t install_sent_at_ = 0;
  uint64_t install_end_ = 0;
  std::map<NodeId, GenAck> acks_;
  std::set<NodeId> install_acks_;
  Install install_;
  uint64_t last_retransmit_ = 0;

  // Boss, open generation.
  std::map<uint64_t, uint64_t> prepare_sent_at_;
  std::map<uint64_t, std::set<NodeId>> votes_;
  uint64_t last_event_at_ = 0;
  std::deque<std::string> queued_;  // proposals waiting for the generation to open
  uint64_t renew_id_ = 0;           // the renewal in progress, if renew_acks_ is not empty
  uint64_t renew_sent_at_ = 0;
  uint64_t renew_committed_ = 0;
  std::set<NodeId> renew_acks_;

  // The quorum device.
  bool qd_held_ = false;        // this node holds it (renews it)
  bool tiebreak_ = false;       // the generation being formed relies on it
  uint64_t qd_claim_at_ = 0;    // a claim in progress, written then
  uint64_t qd_claim_counter_ = 0;
  uint64_t qd_renewed_at_ = 0;
  uint64_t qd_counter_ = 0;     // the counter of this node's last holder write

  // Every node: its proposals not yet seen committed, and digests of the
  // payloads it committed lately (a boss refuses a payload it holds: a
  // proposal resent while its first copy was committing). A boss applies
  // every event of its generation itself, and a proposal is resent only
  // in the generation its sender installed (one that committed it before
  // that install settled it), so the digests cover every proposal a
  // resend can meet.
  struct Proposal {
    std::string payload;
    uint64_t first_at = 0;
    uint64_t sent_at = 0;
    GenId sent_in;
  };
  std::deque<Proposal> proposals_;
  std::set<size_t> committed_digests_;
  std::deque<size_t> committed_order_;

  // Every node.
  uint64_t lease_until_ = 0;
  uint64_t lease_seq_ = 0;  // the commit that last renewed the lease
  std::pair<GenId, uint64_t> lease_renewal_;  // and the last renewal that did
};

}  // namespace sve::cluster

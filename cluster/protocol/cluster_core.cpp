#include "cluster/protocol/cluster_core.hpp"

#include <algorithm>

#include "cluster/protocol/partition.hpp"

namespace sve::cluster {
namespace {

bool contains(const NodeSet& set, NodeId n) {
  return std::binary_search(set.begin(), set.end(), n);
}

}  // namespace

// The members of a generation whose majority a successor needs, less one
// node this node knows was removed from the cluster (a removed node takes
// part in nothing). Less one is safe even against a rival formed by nodes
// that do not know of the removal yet: a majority of n-1 and a majority of
// n still share a node. Without it, a removal committed in a two-node
// generation would leave the survivor needing the removed node for good.
NodeSet ClusterCore::counted(const NodeSet& members) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it)
    if (!contains(durable_.nodes, *it) && !durable_.nodes.empty()) {
      NodeSet out = members;
      out.erase(std::find(out.begin(), out.end(), *it));
      return out;
    }
  return members;
}

namespace {

}  // namespace

ClusterCore::ClusterCore(NodeId self, NodeSet nodes, Env& env, CoreConfig config)
    : self_(self), founding_(std::move(nodes)), env_(env), cfg_(config) {
  std::sort(founding_.begin(), founding_.end());
}

void ClusterCore::start() {
  durable_ = env_.load();
  ++durable_.incarnation;
  // The founding membership, for a node that has never been in a cluster
  // (one that was removed from it waits to be added again).
  if (!in_cluster() && !founding_.empty() && durable_.gen.number == 0) {
    durable_.cluster = "configured";  // (a cluster id, so that removed nodes can come back)
    durable_.nodes = founding_;
    durable_.members = founding_;
    durable_.established_members = founding_;
  }
  persist();
  View& mine = views_[self_];
  mine.incarnation = durable_.incarnation;
  mine.counter = 1;
  mine.nodes = {self_};
  // After a restart a node joins nothing until a boss installs a generation.
  phase_ = Phase::idle;
}

bool ClusterCore::found(const std::string& cluster) {
  if (!durable_.cluster.empty() || durable_.gen.number != 0 || cluster.empty()) return false;
  durable_.cluster = cluster;
  durable_.nodes = {self_};
  durable_.established_members = {self_};  // what the first generation must hold
  persist();
  return true;
}

void ClusterCore::set_nodes(NodeSet nodes, uint64_t seq) {
  if (seq < durable_.nodes_seq) return;
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  if (!contains(nodes, self_)) {
    // Removed: this node stops taking part, but forgets nothing: its log,
    // its state and what it knows of generations stay on disk, so no
    // committed event can be lost with it, and it cannot help an old
    // majority that never heard of later generations form a rival. Only a
    // later membership that lists it again draws it back in (not the
    // heartbeats of members that have not applied its removal yet).
    durable_.nodes = std::move(nodes);
    durable_.nodes_seq = seq;
    persist();
    phase_ = Phase::idle;
    lease_until_ = 0;
    queued_.clear();
    forget_proposals();
    return;
  }
  if (nodes == durable_.nodes && seq == durable_.nodes_seq) return;
  durable_.nodes = std::move(nodes);
  durable_.nodes_seq = seq;
  persist();
  for (auto it = views_.begin(); it != views_.end();)
    it = (it->first == self_ || contains(durable_.nodes, it->first)) ? std::next(it)
                                                                      : views_.erase(it);
  for (auto it = last_heard_.begin(); it != last_heard_.end();)
    it = contains(durable_.nodes, it->first) ? std::next(it) : last_heard_.erase(it);
}

// A fresh node is drawn into a cluster by the heartbeats of a member that
// lists it among the configured nodes. It brings no log and no generation,
// so it can neither outvote nor contradict anything the cluster decided.
// A member learns a newer committed membership from any heartbeat of its
// cluster (it would apply the same change from the log; a node that missed
// its own removal and was added again learns here that it is back).
bool ClusterCore::adopt(const Heartbeat& m) {
  if (in_cluster()) {
    if (m.cluster != durable_.cluster) return false;
    if (m.nodes_seq > durable_.nodes_seq) set_nodes(m.nodes, m.nodes_seq);
    return in_cluster();
  }
  if (m.cluster.empty() || !contains(m.nodes, self_)) return false;
  if (!durable_.cluster.empty() && m.cluster != durable_.cluster) return false;
  if (durable_.nodes_seq != 0 && m.nodes_seq <= durable_.nodes_seq) return false;
  durable_.cluster = m.cluster;
  durable_.nodes = m.nodes;
  durable_.nodes_seq = m.nodes_seq;
  persist();
  return true;
}

void ClusterCore::broadcast(const Message& m) {
  for (NodeId n : durable_.members)
    if (n != self_) env_.send(n, m);
}

void ClusterCore::update_view(uint64_t now) {
  NodeSet view{self_};
  for (auto& [peer, at] : last_heard_)
    if (now - at < cfg_.failure_ms) view.push_back(peer);
  std::sort(view.begin(), view.end());
  View& mine = views_[self_];
  if (view != mine.nodes) {
    mine.nodes = view;
    ++mine.counter;
  }
  NodeSet candidate = choose_partition(views_, durable_.nodes, self_);
  if (!contains(candidate, self_)) candidate.clear();
  if (candidate != candidate_) {
    candidate_ = candidate;
    candidate_since_ = now;
  }
}

void ClusterCore::tick() {
  uint64_t now = env_.now_ms();
  update_view(now);
  if (!in_cluster()) {
    // A fresh node speaks when spoken to. A removed one keeps telling the
    // nodes that stay of its removal: one that missed the commit (its boss
    // may have been the removed node) learns it from the membership these
    // heartbeats carry, and stops waiting for the removed node.
    if (!durable_.nodes.empty()) {
      Heartbeat gone{durable_.cluster, durable_.nodes, durable_.nodes_seq, {}, {}, {}, {}, {}, false};
      for (NodeId n : durable_.nodes) env_.send(n, gone);
    }
    return;
  }
  Heartbeat hb{durable_.cluster,     durable_.nodes,
               durable_.nodes_seq,   views_,
               candidate_,           durable_.established,
               durable_.established_members, durable_.gen,
               phase_ == Phase::open};
  for (NodeId n : durable_.nodes)
    if (n != self_) env_.send(n, hb);
  renew_quorum_device(now);
  maybe_form(now);
  if (now - last_retransmit_ >= cfg_.retransmit_ms) {
    last_retransmit_ = now;
    retransmit(now);
  }
  if (phase_ == Phase::installing) try_open(now);
  if (is_boss() && now - last_event_at_ >= cfg_.lease_ms / 4) renew(now);
  resend_proposals(now);
}

// The lowest node of an agreed, stable candidate that holds a majority of
// the latest generation any of its members knows to have opened forms a new
// generation.
void ClusterCore::maybe_form(uint64_t now) {
  if (candidate_.empty() || candidate_.front() != self_) return;
  if (now - candidate_since_ < cfg_.settle_ms) return;
  GenId latest = durable_.established;
  NodeSet latest_members = durable_.established_members;
  for (NodeId n : candidate_) {
    if (n == self_) continue;
    auto it = peers_.find(n);
    if (it == peers_.end() || !it->second.heard || now - it->second.heard_at >= cfg_.failure_ms)
      return;  // not heard lately: not settled
    if (it->second.candidate != candidate_) return;  // members disagree: wait
    if (latest < it->second.gen) {
      latest = it->second.gen;
      latest_members = it->second.members;
    }
  }
  // The device records every generation that opened: a newer one than any
  // of these nodes knows (a tie-break half, say, that shares none of them)
  // is what a successor must hold a majority of.
  if (env_.has_quorum_device()) {
    QuorumRecord r = env_.read_quorum();
    if (latest < r.gen) {
      latest = r.gen;
      latest_members = r.gen_members;
    }
  }
  // A minority stalls. An exact half goes on only if it holds the quorum
  // device (claiming it may take a while; until then it waits).
  bool tiebreak = false;
  if (!is_majority(candidate_, counted(latest_members))) {
    if (!is_half(candidate_, latest_members) || !holds_quorum_device(now, latest)) return;
    tiebreak = true;
  }
  if (!may_succeed(candidate_, tiebreak)) return;  // as every member checks when it joins
  bool current = durable_.members == candidate_ && durable_.gen.boss == self_;
  // An open generation is current only while its members serve in it: one
  // that restarted, or was drawn into another attempt, needs a new one.
  // (Heartbeats sent before the opening are not held against it.)
  if (current && phase_ == Phase::open && now - opened_at_ > cfg_.settle_ms)
    for (NodeId n : candidate_) {
      if (n == self_) continue;
      const Peer& p = peers_[n];
      if (p.joined != durable_.gen || !p.open) current = false;
    }
  // An attempt in progress gets form_timeout_ms, counted from when it may
  // open at the earliest (after the lease wait).
  bool attempt_alive = (phase_ == Phase::forming || phase_ == Phase::installing) &&
                       now < (open_not_before_ == UINT64_MAX ? form_started_ : open_not_before_) +
                                 cfg_.form_timeout_ms;
  if (current && (phase_ == Phase::open || attempt_alive)) return;
  tiebreak_ = tiebreak;
  start_generation(now, candidate_, latest);
}

void ClusterCore::start_generation(uint64_t now, const NodeSet& members, GenId latest) {
  uint64_t highest = std::max(latest.number, durable_.gen.number);
  for (auto& [n, p] : peers_) highest = std::max(highest, p.joined.number);
  if (env_.has_quorum_device()) {
    QuorumRecord r = env_.read_quorum();
    highest = std::max({highest, r.gen.number, r.attempt.number});
  }
  // Everybody who may hold a lease: the configured nodes, and the members
  // of this node's earlier generations (a node removed by an event it never
  // saw commit still has its lease).
  NodeSet may_serve = durable_.nodes;
  for (const NodeSet* set : {&durable_.members, &durable_.established_members})
    may_serve.insert(may_serve.end(), set->begin(), set->end());
  bool left_out = std::any_of(may_serve.begin(), may_serve.end(),
                              [&](NodeId n) { return !contains(members, n); });
  durable_.gen = GenId{highest + 1, self_};
  durable_.members = members;
  persist();  // the generation is on disk before anything is done in it
  phase_ = Phase::forming;
  lease_until_ = 0;
  form_started_ = now;
  // A node left out may still hold a lease from an earlier generation (any
  // earlier one: attempts that never opened say nothing about which did).
  // The new generation serves only once such leases have certainly run out:
  // a lease, plus a margin for clock rates and message delay, after the
  // last member joined (finish_forming sets it then). Each of those leases
  // was renewed by a prepare or renewal sent before some member of this
  // generation joined it, and members join only until the boss has all
  // their acks. (Counting from now instead was a bug the simulator found:
  // a member may join long after the attempt began, having voted for
  // leases in another generation meanwhile.)
  left_out_ = left_out;
  open_not_before_ = UINT64_MAX;
  acks_.clear();
  install_acks_.clear();
  prepare_sent_at_.clear();
  votes_.clear();
  renew_acks_.clear();
  acks_[self_] = make_ack(durable_.gen);
  broadcast(NewGen{durable_.gen, members, tiebreak_});
  finish_forming(now);
}

void ClusterCore::retransmit(uint64_t now) {
  if (durable_.gen.boss != self_) return;
  if (phase_ == Phase::forming) {
    for (NodeId n : durable_.members)
      if (!acks_.count(n)) env_.send(n, NewGen{durable_.gen, durable_.members, tiebreak_});
  } else if (phase_ == Phase::installing) {
    for (NodeId n : durable_.members)
      if (!install_acks_.count(n)) env_.send(n, install_);
  } else if (phase_ == Phase::open) {
    for (auto& [seq, voters] : votes_)
      for (NodeId n : durable_.members)
        if (!voters.count(n)) env_.send(n, Prepare{durable_.gen, seq, durable_.log.at(seq)});
    if (!renew_acks_.empty())
      for (NodeId n : durable_.members)
        if (!renew_acks_.count(n)) env_.send(n, Renew{durable_.gen, renew_id_, renew_committed_});
    if (durable_.committed > 0 && prepare_sent_at_.empty()) {
      // Let members that missed the last commit learn it (no lease from it:
      // its age keeps growing).
      broadcast(Commit{durable_.gen, durable_.committed, now - last_event_at_});
    }
  }
}

// All members answered: merge their logs into the generation's log.
void ClusterCore::finish_forming(uint64_t now) {
  for (NodeId n : durable_.members)
    if (!acks_.count(n)) return;
  open_not_before_ =
      left_out_ ? now + static_cast<uint64_t>(cfg_.lease_ms * cfg_.lease_margin) : now;
  // Judge the majority again on what the members themselves report: the
  // heartbeats the decision was made on may have been old.
  GenId established = durable_.established;
  NodeSet established_members = durable_.established_members;
  for (auto& [n, ack] : acks_)
    if (established < ack.established) {
      established = ack.established;
      established_members = ack.established_members;
    }
  if (env_.has_quorum_device()) {  // as in maybe_form
    QuorumRecord r = env_.read_quorum();
    if (established < r.gen) {
      established = r.gen;
      established_members = r.gen_members;
    }
  }
  bool enough = is_majority(durable_.members, counted(established_members)) ||
                (tiebreak_ && qd_held_ && is_half(durable_.members, established_members));
  if (enough && tiebreak_) {
    // Before any log is re-stamped with this generation, the device records
    // the attempt, so that a later tie-break by the other half numbers
    // itself above it (the halves share no node that would tell them).
    QuorumRecord r = env_.read_quorum();
    if (durable_.gen < r.attempt || r.gen != established || !still_holds(r)) {
      enough = false;
      qd_held_ = still_holds(r) && qd_held_;
    } else {
      qd_counter_ = r.counter + 1;
      env_.write_quorum({self_, qd_counter_, r.gen, durable_.gen, false, r.gen_members});
    }
  }
  if (!enough) {
    phase_ = Phase::idle;  // abandoned; the members will join a later one
    return;
  }
  uint64_t base = 0;
  for (auto& [n, ack] : acks_) base = std::max(base, ack.committed);
  // The furthest snapshot stands for every entry up to its point (all
  // committed); whoever committed most has the entries after it.
  const GenAck* snap = nullptr;
  for (auto& [n, ack] : acks_)
    if (!ack.snapshot.empty() && (!snap || snap->snapshot_seq < ack.snapshot_seq)) snap = &ack;
  uint64_t from = snap ? snap->snapshot_seq : 0;
  std::map<uint64_t, Entry> merged;
  for (auto& [n, ack] : acks_)
    for (auto& [seq, entry] : ack.log) {
      if (seq <= from) continue;
      auto it = merged.find(seq);
      if (it == merged.end() || it->second.gen < entry.gen) merged[seq] = entry;
    }
  // Committed entries have no holes; past the first hole nothing can have
  // been committed (the boss commits in order), so it is dropped.
  std::map<uint64_t, Entry> log;
  uint64_t seq = from + 1;
  for (; merged.count(seq); ++seq) {
    Entry e = merged[seq];
    // Restamped with this generation; its members stay those of the
    // generation that first ordered it (an RSM judges the event by them,
    // and it may have been committed already under that stamp somewhere).
    if (seq > base) e.gen = durable_.gen;
    log[seq] = std::move(e);
  }
  install_end_ = seq - 1;
  install_ = Install{durable_.gen, base, log, from, {}};
  bool someone_behind = false;
  for (auto& [n, ack] : acks_) someone_behind |= ack.committed < from;
  if (snap && someone_behind) install_.snapshot = snap->snapshot;
  if (snap && durable_.committed < from) {  // the boss itself was behind
    env_.restore(from, snap->snapshot);
    durable_.committed = from;
    forget_proposals();
  }
  durable_.base = std::max(durable_.base, from);
  durable_.log = std::move(log);
  persist();
  commit_upto(base);
  install_sent_at_ = now;
  install_acks_ = {self_};
  phase_ = Phase::installing;
  broadcast(install_);
  try_open(now);
}

void ClusterCore::try_open(uint64_t now) {
  if (phase_ != Phase::installing) return;
  for (NodeId n : durable_.members)
    if (!install_acks_.count(n)) return;
  if (now < open_not_before_) return;
  if (env_.has_quorum_device()) {
    QuorumRecord r = env_.read_quorum();
    if (tiebreak_ && !(qd_held_ && still_holds(r))) {
      phase_ = Phase::idle;  // the device went to the other half meanwhile
      qd_held_ = false;
      return;
    }
    // Before it serves, the generation is on the device: from now on only a
    // half of it may claim the tie-break.
    qd_counter_ = r.counter + 1;
    env_.write_quorum({self_, qd_counter_, durable_.gen, r.attempt, false, durable_.members});
    qd_held_ = true;
    qd_renewed_at_ = now;
  }
  phase_ = Phase::open;
  opened_at_ = now;
  durable_.established = durable_.gen;
  durable_.established_members = durable_.members;
  durable_.installed = durable_.gen;
  durable_.installed_members = durable_.members;
  persist();
  commit_upto(install_end_);
  // The install reached everybody: leases run from when it was sent.
  lease_until_ = install_sent_at_ + cfg_.lease_ms;
  last_event_at_ = install_sent_at_;
  lease_seq_ = durable_.committed;
  broadcast(Commit{durable_.gen, durable_.committed, now - install_sent_at_});
  while (!queued_.empty()) {
    std::string payload = std::move(queued_.front());
    queued_.pop_front();
    order(std::move(payload), now);
  }
}

bool ClusterCore::propose(std::string payload) {
  if (!has_quorum()) return false;
  uint64_t now = env_.now_ms();
  proposals_.push_back(Proposal{payload, now, now, durable_.gen});
  if (is_boss()) {
    order(std::move(payload), now);  // (a lone boss commits it at once)
  } else {
    env_.send(durable_.gen.boss, Propose{durable_.gen, std::move(payload)});
  }
  return true;
}

// A proposal is lost when its message is, when its boss dies before any
// other member held it, or when it reaches a boss whose generation has
// ended; its node sends it again until it sees it committed.
void ClusterCore::resend_proposals(uint64_t now) {
  if (cfg_.propose_give_up_ms)
    while (!proposals_.empty() && now - proposals_.front().first_at >= cfg_.propose_give_up_ms)
      proposals_.pop_front();
  if (!has_quorum()) return;
  std::vector<std::string> due;
  for (Proposal& p : proposals_) {
    if (p.sent_in == durable_.gen && now - p.sent_at < cfg_.propose_resend_ms) continue;
    p.sent_at = now;
    p.sent_in = durable_.gen;
    due.push_back(p.payload);
  }
  for (std::string& payload : due) {  // (ordering one may commit it, and settle it)
    if (is_boss())
      order(std::move(payload), now);
    else
      env_.send(durable_.gen.boss, Propose{durable_.gen, std::move(payload)});
  }
}

// The boss orders a payload once, however often it is proposed.
void ClusterCore::order(std::string payload, uint64_t now) {
  if (!holds(payload)) append(std::move(payload), now);
}

bool ClusterCore::holds(const std::string& payload) const {
  if (committed_digests_.count(std::hash<std::string>{}(payload))) return true;
  for (auto it = durable_.log.rbegin(); it != durable_.log.rend(); ++it)
    if (it->second.payload == payload) return true;
  return std::find(queued_.begin(), queued_.end(), payload) != queued_.end();
}

// Committed: no longer to be resent, and remembered so that a resend still
// on its way is not ordered again.
void ClusterCore::settle_proposal(const std::string& payload) {
  constexpr size_t kDigestsKept = 4096;
  size_t digest = std::hash<std::string>{}(payload);
  if (committed_digests_.insert(digest).second) {
    committed_order_.push_back(digest);
    if (committed_order_.size() > kDigestsKept) {
      committed_digests_.erase(committed_order_.front());
      committed_order_.pop_front();
    }
  }
  auto it = std::find_if(proposals_.begin(), proposals_.end(),
                         [&](const Proposal& p) { return p.payload == payload; });
  if (it != proposals_.end()) proposals_.erase(it);
}

void ClusterCore::append(std::string payload, uint64_t now) {
  uint64_t seq = durable_.log.empty() ? std::max(durable_.base, durable_.committed) + 1
                                      : durable_.log.rbegin()->first + 1;
  Entry entry{durable_.gen, std::move(payload), durable_.members};
  durable_.log[seq] = entry;
  persist();
  prepare_sent_at_[seq] = now;
  votes_[seq] = {self_};
  last_event_at_ = now;
  broadcast(Prepare{durable_.gen, seq, entry});
  try_commit(now);
}

// Commits, in order, every event all members have voted for.
void ClusterCore::try_commit(uint64_t now) {
  while (!votes_.empty()) {
    auto it = votes_.begin();
    uint64_t seq = it->first;
    if (seq != durable_.committed + 1) return;
    for (NodeId n : durable_.members)
      if (!it->second.count(n)) return;
    uint64_t sent = prepare_sent_at_[seq];
    commit_upto(seq);
    votes_.erase(it);
    prepare_sent_at_.erase(seq);
    lease_until_ = std::max(lease_until_, sent + cfg_.lease_ms);
    lease_seq_ = seq;
    broadcast(Commit{durable_.gen, seq, now - sent});
  }
}

void ClusterCore::commit_upto(uint64_t seq) {
  uint64_t from = durable_.committed;
  if (seq <= from) return;
  for (uint64_t s = from + 1; s <= seq; ++s)
    if (!durable_.log.count(s)) return;  // callers check; never commit a hole
  durable_.committed = seq;
  persist();
  for (uint64_t s = from + 1; s <= seq; ++s) {
    settle_proposal(durable_.log.at(s).payload);
    if (on_commit) on_commit(s, durable_.log.at(s));
  }
  compact();
}

// Drops committed entries older than the last keep_entries, once they are
// applied (on_commit has returned, so the host's state holds them durably).
void ClusterCore::compact() {
  uint64_t keep = cfg_.keep_entries;
  if (keep == 0 || durable_.committed <= durable_.base + 2 * keep) return;
  durable_.base = durable_.committed - keep;
  durable_.log.erase(durable_.log.begin(), durable_.log.upper_bound(durable_.base));
  persist();
}

GenAck ClusterCore::make_ack(GenId gen) {
  GenAck ack{gen, durable_.established, durable_.established_members, durable_.committed,
             durable_.log, 0, {}};
  if (durable_.base > 0) {  // it stands for the dropped entries with its state
    ack.snapshot_seq = durable_.committed;
    ack.snapshot = env_.snapshot();
  }
  return ack;
}

void ClusterCore::receive(NodeId from, const Message& message) {
  uint64_t now = env_.now_ms();
  // Only heartbeats speak to a node outside the cluster; inside it, only
  // configured nodes are heard.
  if (auto* hb = std::get_if<Heartbeat>(&message)) {
    if (!adopt(*hb)) return;
  }
  if (!in_cluster() || from == self_ || !contains(durable_.nodes, from)) return;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Heartbeat>) on_heartbeat(from, m, now);
        else if constexpr (std::is_same_v<T, NewGen>) on_new_gen(from, m);
        else if constexpr (std::is_same_v<T, GenAck>) on_gen_ack(from, m, now);
        else if constexpr (std::is_same_v<T, Install>) on_install(from, m);
        else if constexpr (std::is_same_v<T, InstallAck>) on_install_ack(from, m, now);
        else if constexpr (std::is_same_v<T, Propose>) {
          // The boss orders it; a boss still forming keeps it for the opening.
          // One sent in another generation is dropped: its sender resends it
          // in the generation it joins next.
          if (m.gen != durable_.gen) return;
          if (is_boss())
            order(m.payload, now);
          else if (durable_.gen.boss == self_ && phase_ != Phase::idle && !holds(m.payload))
            queued_.push_back(m.payload);
        }
        else if constexpr (std::is_same_v<T, Prepare>) on_prepare(from, m);
        else if constexpr (std::is_same_v<T, Vote>) on_vote(from, m, now);
        else if constexpr (std::is_same_v<T, Commit>) on_commit_msg(from, m, now);
        else if constexpr (std::is_same_v<T, Renew>) on_renew(from, m);
        else if constexpr (std::is_same_v<T, Renewed>) on_renewed(from, m, now);
        else if constexpr (std::is_same_v<T, Lease>) on_lease(from, m, now);
      },
      message);
}

void ClusterCore::on_heartbeat(NodeId from, const Heartbeat& m, uint64_t now) {
  last_heard_[from] = now;
  for (auto& [node, view] : m.views) {
    if (node == self_) continue;
    auto it = views_.find(node);
    if (it == views_.end() || view.newer_than(it->second)) views_[node] = view;
  }
  // A peer knows a newer generation opened: so does this node now (it
  // judges successors by the newest one it knows; one it never heard had
  // opened, because its boss went before the commit reached it, could
  // otherwise hold it back for good).
  if (durable_.established < m.established) {
    durable_.established = m.established;
    durable_.established_members = m.established_members;
    persist();
  }
  Peer& p = peers_[from];
  p.candidate = m.candidate;
  p.gen = m.established;
  p.members = m.established_members;
  p.joined = m.joined;
  p.open = m.open;
  p.heard_at = now;
  p.heard = true;
}

// Whether a generation of `members` may follow what this node knows: a
// majority of the last generation it knows to have opened, and of the last
// one it installed if that is newer (that one may have opened without this
// node hearing of it). Two successors of one generation thus share a node,
// which joins only one of them.
// With `tiebreak` (the boss holds the quorum device) an exact half will do.
bool ClusterCore::may_succeed(const NodeSet& members, bool tiebreak) const {
  auto enough = [&](const NodeSet& of) {
    if (of.empty()) return true;  // a fresh node: it has seen no generation
    return is_majority(members, counted(of)) || (tiebreak && is_half(members, of));
  };
  if (!enough(durable_.established_members)) return false;
  if (durable_.established < durable_.installed && !enough(durable_.installed_members))
    return false;
  return true;
}

// Whether this node holds the quorum device, claiming it if nobody renews
// it: write a claim, wait longer than a holder's renewal period, and own it
// only if the claim is still there. Only a half of the last generation that
// opened (the device records it) may claim: a half of an older one would
// not have that generation's events.
bool ClusterCore::holds_quorum_device(uint64_t now, GenId half_of) {
  if (!env_.has_quorum_device()) return false;
  QuorumRecord r = env_.read_quorum();
  // Holding the device is not enough: it must be a half of the generation
  // that opened last (a holder that claimed it for one split may be looking
  // at another, with stale knowledge, by now).
  if (qd_held_) return r.gen == half_of;
  if (r.gen != half_of) {
    qd_claim_at_ = 0;
    return false;
  }
  if (qd_claim_at_ == 0) {
    qd_claim_counter_ = r.counter + 1;
    env_.write_quorum({self_, qd_claim_counter_, r.gen, r.attempt, true, r.gen_members});
    qd_claim_at_ = now;
    return false;
  }
  if (now - qd_claim_at_ < cfg_.quorum_claim_ms) return false;
  qd_claim_at_ = 0;
  if (r.owner != self_ || r.counter != qd_claim_counter_) return false;  // a holder lives
  qd_counter_ = r.counter + 1;
  env_.write_quorum({self_, qd_counter_, r.gen, r.attempt, false, r.gen_members});  // now a holder
  qd_held_ = true;
  qd_renewed_at_ = now;
  return true;
}

// A holder still holds the device if the record is its own last write, or a
// claim (which its next write defeats). Anything else is another holder's:
// it has lost the device.
bool ClusterCore::still_holds(const QuorumRecord& r) const {
  return r.claiming || (r.owner == self_ && r.counter == qd_counter_);
}

// The holder rewrites the record while it is the serving boss, or forming a
// generation that relies on the device; otherwise it lets go, so that the
// other half may claim it.
void ClusterCore::renew_quorum_device(uint64_t now) {
  if (!env_.has_quorum_device()) return;
  bool serving_boss = is_boss() && lease_valid();
  bool forming_on_it = tiebreak_ && (phase_ == Phase::forming || phase_ == Phase::installing);
  if (!serving_boss && !forming_on_it) {
    qd_held_ = false;
    return;
  }
  // Only a serving boss takes the device up without a claim; a tie-break
  // attempt that lost it has lost it.
  if (!qd_held_ && !serving_boss) return;
  if (qd_held_ && now - qd_renewed_at_ < cfg_.quorum_renew_ms) return;
  if (qd_held_ && now - qd_renewed_at_ > cfg_.quorum_claim_ms / 2) {
    // Late: a claim may have run its course meanwhile. It is lost.
    qd_held_ = false;
    return;
  }
  // A holder overwrites whatever is there: a pending claim thus fails. Not
  // holding yet (a serving boss takes it up), it writes without a claim:
  // a serving boss has a majority and needs no tie-break to be safe.
  QuorumRecord r = env_.read_quorum();
  if (qd_held_ && !still_holds(r)) {
    qd_held_ = false;
    return;
  }
  qd_counter_ = r.counter + 1;
  bool mine_newer = r.gen < durable_.established;
  env_.write_quorum({self_, qd_counter_, mine_newer ? durable_.established : r.gen, r.attempt,
                     false, mine_newer ? durable_.established_members : r.gen_members});
  qd_held_ = true;
  qd_renewed_at_ = now;
}

void ClusterCore::on_new_gen(NodeId from, const NewGen& m) {
  if (from != m.gen.boss || !contains(m.members, self_)) return;
  if (m.gen < durable_.gen) return;
  // The boss judged from what it last heard; this node knows its own
  // generations for sure.
  if (durable_.gen < m.gen && !may_succeed(m.members, m.tiebreak)) return;
  if (durable_.gen < m.gen) {
    durable_.gen = m.gen;
    durable_.members = m.members;
    persist();  // joined: never again vote in an older generation
    phase_ = Phase::joined;
    lease_until_ = 0;  // serve nothing until the new generation opens
    queued_.clear();
  }
  if (phase_ == Phase::joined)
    env_.send(from, make_ack(m.gen));
}

void ClusterCore::on_gen_ack(NodeId from, const GenAck& m, uint64_t now) {
  if (phase_ != Phase::forming || m.gen != durable_.gen) return;
  acks_[from] = m;
  finish_forming(now);
}

void ClusterCore::on_install(NodeId from, const Install& m) {
  if (m.gen != durable_.gen || from != m.gen.boss) return;
  if (phase_ == Phase::joined) {
    if (m.snapshot_seq > durable_.committed) {
      if (m.snapshot.empty()) return;  // cannot happen: the boss sends it to laggards
      env_.restore(m.snapshot_seq, m.snapshot);
      durable_.committed = m.snapshot_seq;
      forget_proposals();
    }
    durable_.base = std::max(durable_.base, m.snapshot_seq);
    durable_.log = m.log;
    durable_.installed = m.gen;
    durable_.installed_members = durable_.members;
    // Entries it had committed stay committed: the install's log agrees with
    // them (every committed entry is in it, unchanged).
    persist();
    commit_upto(m.committed);
    phase_ = Phase::open;  // a member: votes from now on, lease from commits
  }
  if (phase_ == Phase::open) env_.send(from, InstallAck{m.gen});
}

void ClusterCore::on_install_ack(NodeId from, const InstallAck& m, uint64_t now) {
  if (phase_ != Phase::installing || m.gen != durable_.gen) return;
  install_acks_.insert(from);
  try_open(now);
}

void ClusterCore::on_prepare(NodeId from, const Prepare& m) {
  if (m.gen != durable_.gen || from != m.gen.boss || phase_ != Phase::open) return;
  if (m.seq > durable_.committed) {
    durable_.log[m.seq] = m.entry;
    persist();
  }
  env_.send(from, Vote{m.gen, m.seq});
}

void ClusterCore::on_vote(NodeId from, const Vote& m, uint64_t now) {
  if (!is_boss() || m.gen != durable_.gen) return;
  auto it = votes_.find(m.seq);
  if (it == votes_.end()) return;
  it->second.insert(from);
  try_commit(now);
}

void ClusterCore::on_commit_msg(NodeId from, const Commit& m, uint64_t now) {
  if (m.gen != durable_.gen || from != m.gen.boss || phase_ != Phase::open) return;
  uint64_t upto = durable_.committed;
  while (upto < m.seq) {
    auto it = durable_.log.find(upto + 1);
    if (it == durable_.log.end() || it->second.gen != m.gen) break;
    ++upto;
  }
  commit_upto(upto);
  if (durable_.established != m.gen) {  // the first commit: it has opened
    durable_.established = m.gen;
    durable_.established_members = durable_.members;
    persist();
  }
  if (m.seq > lease_seq_ && upto >= m.seq) {
    // From when the boss sent its prepare, allowing 1% for clock rates.
    lease_seq_ = m.seq;
    uint64_t age = m.age_ms + m.age_ms / 100 + 1;
    uint64_t start = now > age ? now - age : 0;
    lease_until_ = std::max(lease_until_, start + cfg_.lease_ms);
  }
}

// The boss renews leases when no event has done it for lease/4.
void ClusterCore::renew(uint64_t now) {
  if (!renew_acks_.empty()) return;  // one at a time: retransmit() resends it
  ++renew_id_;
  renew_sent_at_ = now;
  renew_committed_ = durable_.committed;
  renew_acks_ = {self_};
  last_event_at_ = now;
  broadcast(Renew{durable_.gen, renew_id_, renew_committed_});
  on_renewed(self_, Renewed{durable_.gen, renew_id_}, now);
}

void ClusterCore::on_renew(NodeId from, const Renew& m) {
  if (m.gen != durable_.gen || from != m.gen.boss || phase_ != Phase::open) return;
  // A member that missed a commit confirms nothing: the boss resends the
  // commit, and the next renewal finds it caught up.
  if (durable_.committed < m.committed) return;
  env_.send(from, Renewed{m.gen, m.id});
}

void ClusterCore::on_renewed(NodeId from, const Renewed& m, uint64_t now) {
  if (!is_boss() || m.gen != durable_.gen || m.id != renew_id_ || renew_acks_.empty()) return;
  renew_acks_.insert(from);
  for (NodeId n : durable_.members)
    if (!renew_acks_.count(n)) return;
  renew_acks_.clear();
  lease_until_ = std::max(lease_until_, renew_sent_at_ + cfg_.lease_ms);
  lease_renewal_ = {durable_.gen, m.id};
  broadcast(Lease{durable_.gen, m.id, renew_committed_, now - renew_sent_at_});
}

void ClusterCore::on_lease(NodeId from, const Lease& m, uint64_t now) {
  if (m.gen != durable_.gen || from != m.gen.boss || phase_ != Phase::open) return;
  // Each renewal counts once: a duplicate arriving late would stretch it.
  std::pair<GenId, uint64_t> renewal{m.gen, m.id};
  if (!(lease_renewal_ < renewal) || durable_.committed < m.committed) return;
  lease_renewal_ = renewal;
  if (durable_.established != m.gen) {  // a lease proves the generation opened
    durable_.established = m.gen;
    durable_.established_members = durable_.members;
    persist();
  }
  uint64_t age = m.age_ms + m.age_ms / 100 + 1;
  uint64_t start = now > age ? now - age : 0;
  lease_until_ = std::max(lease_until_, start + cfg_.lease_ms);
}

}  // namespace sve::cluster

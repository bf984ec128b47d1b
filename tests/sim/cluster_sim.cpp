#include "tests/sim/cluster_sim.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <vector>
#include <cstdio>
#include <cstdlib>

#include "model/ownership.hpp"
#include "cluster/protocol/cluster_core.hpp"
#include "cluster/protocol/codec.hpp"
#include "cluster/rsm/replicated_state.hpp"
#include "model/model.hpp"

namespace sve::cluster::sim {
namespace {

class Sim;

// Thrown by a durable write that the simulator decided to interrupt with a
// power failure: it unwinds the node's call, and the node is gone.
struct PowerFailure {};

// A test RSM: its state is a running digest of every event applied and how
// many; each event answers the node that proposed it ("n<id>-...").
class DigestRsm final : public Rsm {
 public:
  std::string name() const override { return "digest"; }
  void apply(uint64_t seq, const Entry& entry, std::string& state,
             std::vector<Response>& responses) override {
    const std::string& event = entry.payload;
    uint64_t h = state.empty() ? 1469598103934665603ull : std::stoull(state);
    for (char c : event) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    h = (h ^ seq) * 1099511628211ull;
    state = std::to_string(h);
    if (event.size() > 1 && event[0] == 'n' && std::isdigit(static_cast<unsigned char>(event[1])))
      responses.push_back({static_cast<NodeId>(std::stoul(event.substr(1))), event});
  }
};

// The membership RSM, as the node's host has one: its state is the last
// "nodes:..." change it accepted and that event's seq. A change that would
// leave the committing generation without a majority of its members is
// refused (they hold every committed event; a removed node forgets its
// copy).
class MembershipRsm final : public Rsm {
 public:
  std::string name() const override { return "membership"; }
  void apply(uint64_t seq, const Entry& e, std::string& state,
             std::vector<Response>&) override {
    if (e.payload.rfind("nodes:", 0) != 0) return;
    NodeSet set = parse(e.payload);
    size_t staying = 0;
    for (NodeId m : e.members) staying += std::count(set.begin(), set.end(), m);
    if (staying * 2 <= e.members.size()) return;
    state = std::to_string(seq) + "|" + e.payload;
  }
  // "nodes:1,2,3#k" (k makes each proposal unique, as the host's are)
  static NodeSet parse(const std::string& payload) {
    NodeSet set;
    size_t from = payload.find(':') + 1;
    std::istringstream in(payload.substr(from, payload.find('#') - from));
    for (std::string id; std::getline(in, id, ',');) set.push_back(std::stoul(id));
    return set;
  }
};

class SimEnv final : public Env, public CopyStore {
 public:
  SimEnv(Sim& sim, NodeId id) : sim_(sim), id_(id) {}
  uint64_t now_ms() override;
  void send(NodeId to, Message message) override;
  void persist(const Durable& state) override;
  Durable load() override;
  void write_copy(int which, const StateCopy& copy) override;
  StateCopy read_copy(int which) override;
  bool has_quorum_device() override;
  QuorumRecord read_quorum() override;
  void write_quorum(const QuorumRecord& r) override;
  std::string snapshot() override;
  void restore(uint64_t seq, const std::string& state) override;

 private:
  Sim& sim_;
  NodeId id_;
};

struct SimNode {
  NodeId id = 0;
  double rate = 1.0;      // its clock's rate against the simulator's
  uint64_t offset = 0;    // its clock's reading at time zero
  Durable disk;           // survives crashes
  StateCopy copies[2];    // the cluster state's copies A and B, on disk too
  std::unique_ptr<SimEnv> env;
  std::unique_ptr<ClusterCore> core;  // null while crashed
  std::unique_ptr<DigestRsm> rsm;
  std::unique_ptr<ReplicatedState> state;
  std::set<std::string> delivered;  // responses, this incarnation
  uint64_t applied = 0;   // the last seq its on_commit delivered
  uint64_t last_local = 0;
  std::unique_ptr<MembershipRsm> membership;
  // Times it forgot its proposals (crashed, was removed, installed a
  // snapshot): one it made since must be committed by the end.
  uint64_t forgets = 0;
};

struct Event {
  uint64_t at;
  uint64_t order;  // ties broken by creation order: deterministic
  enum Kind { tick, deliver, fault } kind;
  NodeId from = 0, to = 0;
  std::shared_ptr<Message> message;
  bool operator>(const Event& o) const { return at != o.at ? at > o.at : order > o.order; }
};

class Sim {
 public:
  explicit Sim(const SimOptions& o) : opt_(o), rng_(o.seed) {
    opt_.core.propose_give_up_ms = 0;  // a proposal is resent until it commits
    // Half the seeds give the cluster a quorum device; only those may have
    // an even number of nodes that can lose half of them (2 or 4).
    device_ = o.scripted ? o.quorum_device : rng_() % 2 == 1;
    std::uniform_int_distribution<unsigned> n_nodes(device_ ? 2 : 3, 5);
    unsigned n = n_nodes(rng_);
    if (o.nodes) n = o.nodes;
    loss_ = uniform(0, 0.15);
    dup_ = uniform(0, 0.05);
    max_delay_ = 1 + rng_() % 25;
    double drift = uniform(0, 0.005);
    fault_gap_ = 150 + rng_() % 900;
    power_failure_ = rng_() % 2 ? uniform(0, 0.01) : 0;
    wire_ = o.seed % 4 == 0;
    crash_weight_ = rng_() % 3;
    // Compaction: most seeds keep only a few committed entries, so nodes
    // that fall behind catch up from snapshots; some keep everything.
    opt_.core.keep_entries = rng_() % 3 == 0 ? 0 : 2 + rng_() % 12;
    // A third of the seeds also add and remove nodes while faults happen
    // (after the heal every node is added back).
    // (Drawn from a generator of its own: the other seeds replay as before.)
    membership_ = !o.scripted && std::mt19937_64(o.seed ^ 0x6d656d62ull)() % 3 == 0;
    if (o.scripted) {  // a clean network; the script makes the faults
      loss_ = dup_ = power_failure_ = 0;
      max_delay_ = 2;
      drift = 0;
    }
    for (NodeId id = 1; id <= n; ++id) all_.push_back(id);
    for (NodeId id : all_) {
      SimNode& node = nodes_[id];
      node.id = id;
      node.rate = 1.0 + uniform(-drift, drift);
      node.offset = rng_() % 100000;
      node.env = std::make_unique<SimEnv>(*this, id);
      boot(node);
    }
    if (!o.scripted) push({opt_.fault_ms > 0 ? 10 : 0, 0, Event::fault});
  }

  SimResult run();

  // Scripted runs: the test drives time and faults.
  void run_until(uint64_t t) {
    while (!queue_.empty() && queue_.top().at <= t && result_.ok) {
      Event e = queue_.top();
      queue_.pop();
      now_ = e.at;
      step(e);
      check_invariants();
    }
    now_ = std::max(now_, t);
  }
  uint64_t now() const { return now_; }
  std::string snapshot(NodeId id) { return ReplicatedState::encode(nodes_.at(id).state->state()); }
  void restore(NodeId id, uint64_t seq, const std::string& bytes) {
    SimNode& n = nodes_.at(id);
    auto copy = ReplicatedState::decode(bytes);
    if (!copy || copy->seq != seq) {
      fail("node " + std::to_string(id) + " got a snapshot that does not decode or is not at " +
           std::to_string(seq));
      return;
    }
    ++n.forgets;  // (its core drops its proposals: the snapshot may hold them)
    n.state->restore(*copy);  // may lose power between copy A and B
    n.applied = seq;
    ++result_.snapshots;
    auto [it, fresh] = states_.emplace(seq, copy->states);
    if (!fresh && it->second != copy->states)
      fail("node " + std::to_string(id) + " installed a snapshot at " + std::to_string(seq) +
           " that differs from the state others had after that event");
  }
  void crash_node(NodeId id) { if (nodes_.at(id).core) crash(nodes_.at(id)); }
  void restart_node(NodeId id) { if (!nodes_.at(id).core) boot(nodes_.at(id)); }
  void isolate(NodeId id) {
    for (NodeId o : all_)
      if (o != id) blocked_.insert({id, o}), blocked_.insert({o, id});
  }
  void heal() { blocked_.clear(); }
  ClusterCore* core(NodeId id) { return nodes_.at(id).core.get(); }
  const SimResult& result() const { return result_; }
  const std::map<uint64_t, std::string>& committed_events() const { return committed_; }

  uint64_t local_now(NodeId id) {
    SimNode& n = nodes_[id];
    uint64_t local = n.offset + static_cast<uint64_t>(static_cast<double>(now_) * n.rate);
    n.last_local = std::max(n.last_local, local);  // monotonic
    return n.last_local;
  }
  void send(NodeId from, NodeId to, Message m) {
    ++result_.messages;
    if (!nodes_[from].core) return;
    if (blocked_.count({from, to}) || chance(loss_)) return;
    if (wire_) {
      // Through the wire form, as between real nodes: what arrives is what
      // decodes from the bytes.
      auto decoded = decode_message(encode_message(m));
      if (!decoded) {
        fail("a message did not survive encoding");
        return;
      }
      m = std::move(*decoded);
    }
    auto msg = std::make_shared<Message>(std::move(m));
    push({now_ + 1 + rng_() % max_delay_, 0, Event::deliver, from, to, msg});
    if (chance(dup_)) push({now_ + 1 + rng_() % max_delay_, 0, Event::deliver, from, to, msg});
  }
  void persist(NodeId id, const Durable& d) {
    if (opt_.broken == "durable_lost" && chance(0.3)) return;
    nodes_[id].disk = d;
  }
  Durable load(NodeId id) { return nodes_[id].disk; }
  void write_copy(NodeId id, int which, const StateCopy& c) {
    // A power failure just before the write, or just after it.
    bool fail_now = running_ && chance(power_failure_);
    bool before = fail_now && rng_() % 2;
    if (opt_.broken == "copy_b_first") which = 1 - which;
    if (!before) nodes_[id].copies[which] = c;
    if (fail_now) throw PowerFailure{};
  }
  StateCopy read_copy(NodeId id, int which) { return nodes_[id].copies[which]; }
  // The quorum device: one record on a disk every node reaches, even across
  // a network partition (it sits on the shared back end).
  bool device() const { return device_; }
  QuorumRecord& quorum_record() { return quorum_; }

 private:
  double uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  bool chance(double p) { return uniform(0, 1) < p; }
  void push(Event e) {
    e.order = ++order_;
    queue_.push(std::move(e));
  }
  void boot(SimNode& node) {
    node.core = std::make_unique<ClusterCore>(node.id, opt_.fresh ? NodeSet{} : all_, *node.env,
                                              opt_.core);
    NodeId id = node.id;
    node.core->on_commit = [this, id](uint64_t seq, const Entry& e) { on_commit(id, seq, e); };
    node.applied = node.disk.committed;
    node.rsm = std::make_unique<DigestRsm>();
    node.membership = std::make_unique<MembershipRsm>();
    ClusterCore* core = node.core.get();
    node.state = std::make_unique<ReplicatedState>(
        id, *node.env,
        [core, this] { return opt_.broken == "gate_ignores_lease" || core->has_quorum(); },
        [this, id](uint64_t seq, const Response& r) { on_response(id, seq, r); });
    node.state->add(*node.rsm);
    node.state->add(*node.membership);
    node.delivered.clear();
    try {
      node.core->start();
      // Roll forward: committed events the state copies had not taken yet.
      node.state->recover();
      for (uint64_t s = node.state->applied() + 1; s <= node.disk.committed; ++s)
        apply_state(node, s, node.disk.log.at(s));
      // The membership the cluster state holds (a crash may have come
      // between a change's commit and its reaching the core).
      apply_membership(node, false);
    } catch (const PowerFailure&) {
      crash(node);
      return;
    }
    schedule_tick(node.id);
  }
  void crash(SimNode& node) {
    if (trace_) std::printf("%6lu crash %u\n", (unsigned long)now_, node.id);
    node.core.reset();
    node.state.reset();
    ++node.forgets;
    ++result_.crashes;
  }
  void apply_state(SimNode& node, uint64_t seq, const Entry& e) {
    if (opt_.broken == "state_per_node" && node.id == 1)
      node.state->apply(seq, Entry{e.gen, e.payload + "'", e.members});
    else
      node.state->apply(seq, e);
    auto [it, fresh] = states_.emplace(seq, node.state->state().states);
    if (!fresh && it->second != node.state->state().states)
      fail("node " + std::to_string(node.id) + " has a different cluster state after event " +
           std::to_string(seq));
  }
  void on_response(NodeId id, uint64_t seq, const Response& r) {
    SimNode& n = nodes_[id];
    std::string node = std::to_string(id);
    if (r.target != id)
      fail("a response for node " + std::to_string(r.target) + " passed the gate on " + node);
    if (!n.core || !n.core->has_quorum())
      fail("a response passed the gate on offline node " + node);
    if (!n.delivered.insert(std::to_string(seq) + ":" + r.body).second)
      fail("response to event " + std::to_string(seq) + " delivered twice on node " + node);
    ++result_.responses;
  }
  void schedule_tick(NodeId id) {
    SimNode& n = nodes_[id];
    auto step = static_cast<uint64_t>(static_cast<double>(opt_.core.heartbeat_ms) / n.rate);
    push({now_ + std::max<uint64_t>(1, step), 0, Event::tick, 0, id});
  }
  void fail(const std::string& what) {
    if (!result_.ok) return;
    std::ostringstream s;
    s << "seed " << opt_.seed << " at " << now_ << " ms: " << what;
    result_.ok = false;
    result_.failure = s.str();
  }
  void on_commit(NodeId id, uint64_t seq, const Entry& e);
  void apply_membership(SimNode& n, bool was_in);
  std::string nodes_payload(const NodeSet& set) {
    std::string out = "nodes:";
    for (size_t i = 0; i < set.size(); ++i) out += (i ? "," : "") + std::to_string(set[i]);
    return out + "#" + std::to_string(++proposals_);
  }
  // Proposes `payload` at node `n`; true if it took it (then it must be
  // committed, once, unless the node forgets it).
  bool propose_at(SimNode& n, const std::string& payload) {
    if (!n.core->propose(payload)) return false;
    accepted_[payload] = {n.id, n.forgets};
    return true;
  }
  // Proposes `to` (or a random one-node change) at a node that serves.
  void change_membership(std::optional<NodeSet> to) {
    std::vector<NodeId> order = all_;
    std::shuffle(order.begin(), order.end(), rng_);
    for (NodeId id : order) {
      SimNode& n = nodes_[id];
      if (!n.core || !n.core->has_quorum()) continue;
      NodeSet set = n.core->nodes();
      if (to) {
        set = *to;
      } else {
        NodeSet missing;
        for (NodeId a : all_)
          if (!std::count(set.begin(), set.end(), a)) missing.push_back(a);
        if (!missing.empty() && (set.size() <= 2 || rng_() % 2)) {
          set.push_back(missing[rng_() % missing.size()]);
          std::sort(set.begin(), set.end());
        } else if (set.size() > 2) {
          set.erase(set.begin() + static_cast<long>(rng_() % set.size()));
        } else {
          return;
        }
      }
      try {
        if (propose_at(n, nodes_payload(set))) ++result_.membership_changes;
        apply_membership(n, true);
      } catch (const PowerFailure&) {
        crash(n);
      }
      return;
    }
  }
  // SVE_SIM_TRACE=1 prints every protocol message but heartbeats.
  bool trace_ = std::getenv("SVE_SIM_TRACE") != nullptr;
  void trace(const Event& e) {
    std::visit([&](const auto& m) {
      using T = std::decay_t<decltype(m)>;
      auto g = [](GenId x) { return std::to_string(x.number) + "/" + std::to_string(x.boss); };
      std::string what;
      if constexpr (std::is_same_v<T, NewGen>) what = "NewGen " + g(m.gen);
      else if constexpr (std::is_same_v<T, GenAck>) what = "GenAck " + g(m.gen) + " committed " + std::to_string(m.committed) + " log " + std::to_string(m.log.size());
      else if constexpr (std::is_same_v<T, Install>) what = "Install " + g(m.gen) + " committed " + std::to_string(m.committed) + " log " + std::to_string(m.log.size());
      else if constexpr (std::is_same_v<T, InstallAck>) what = "InstallAck " + g(m.gen);
      else if constexpr (std::is_same_v<T, Prepare>) what = "Prepare " + g(m.gen) + " seq " + std::to_string(m.seq) + " '" + m.entry.payload + "'";
      else if constexpr (std::is_same_v<T, Vote>) what = "Vote " + g(m.gen) + " seq " + std::to_string(m.seq);
      else if constexpr (std::is_same_v<T, Commit>) what = "Commit " + g(m.gen) + " seq " + std::to_string(m.seq);
      else if constexpr (std::is_same_v<T, Propose>) what = "Propose '" + m.payload + "'";
      else if constexpr (std::is_same_v<T, Renew>) what = "Renew " + g(m.gen) + " #" + std::to_string(m.id) + " committed " + std::to_string(m.committed);
      else if constexpr (std::is_same_v<T, Renewed>) what = "Renewed " + g(m.gen) + " #" + std::to_string(m.id);
      else if constexpr (std::is_same_v<T, Lease>) what = "Lease " + g(m.gen) + " #" + std::to_string(m.id);
      else return;
      std::printf("%6lu %u->%u %s\n", (unsigned long)now_, e.from, e.to, what.c_str());
    }, *e.message);
  }
  void do_fault();
  void propose_some();
  void check_invariants();
  void check_progress();
  void step(const Event& e);

  SimOptions opt_;
  std::mt19937_64 rng_;
  double loss_ = 0, dup_ = 0, power_failure_ = 0;
  bool running_ = true;
  bool wire_ = false;  // every fourth seed sends everything through the codec
  bool device_ = false;
  QuorumRecord quorum_;
  std::map<uint64_t, std::map<std::string, std::string>> states_;  // seq -> state after it
  uint64_t max_delay_ = 1, fault_gap_ = 500;
  unsigned crash_weight_ = 1;
  NodeSet all_;
  std::map<NodeId, SimNode> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t now_ = 0, order_ = 0;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::map<uint64_t, std::string> committed_;  // seq -> payload, as first committed
  bool membership_ = false;
  uint64_t next_membership_ = 500;
  uint64_t readd_at_ = 0;
  std::map<GenId, NodeSet> generations_;
  // Ownership (model/ownership.hpp) over a fixed model: I/O groups {1,2}
  // and {3,4}, vdisk i preferring node i. Checked again whenever who holds
  // a lease, in which generation, changes.
  ClusterModel ownership_model_ = make_ownership_model();
  std::vector<std::pair<NodeId, GenId>> last_serving_;
  static ClusterModel make_ownership_model();
  void check_ownership(const std::vector<std::pair<NodeId, GenId>>& serving);
  uint64_t proposals_ = 0;
  // Every proposal a node took: its node, and how often that node had
  // forgotten its proposals then; and where each payload was committed.
  std::map<std::string, std::pair<NodeId, uint64_t>> accepted_;
  std::map<std::string, uint64_t> committed_seq_;
  std::string marker_;  // proposed after the heal; must commit everywhere
  NodeId left_down_ = 0;  // a node kept down after the heal (0: none)
  bool kill_one_ = false;
  SimResult result_;
};

uint64_t SimEnv::now_ms() { return sim_.local_now(id_); }
void SimEnv::send(NodeId to, Message message) { sim_.send(id_, to, std::move(message)); }
void SimEnv::persist(const Durable& state) { sim_.persist(id_, state); }
Durable SimEnv::load() { return sim_.load(id_); }
void SimEnv::write_copy(int which, const StateCopy& copy) { sim_.write_copy(id_, which, copy); }
StateCopy SimEnv::read_copy(int which) { return sim_.read_copy(id_, which); }
bool SimEnv::has_quorum_device() { return sim_.device(); }
QuorumRecord SimEnv::read_quorum() { return sim_.quorum_record(); }
void SimEnv::write_quorum(const QuorumRecord& r) { sim_.quorum_record() = r; }
std::string SimEnv::snapshot() { return sim_.snapshot(id_); }
void SimEnv::restore(uint64_t seq, const std::string& state) { sim_.restore(id_, seq, state); }

void Sim::on_commit(NodeId id, uint64_t seq, const Entry& e) {
  SimNode& n = nodes_[id];
  if (seq != n.applied + 1) fail("node " + std::to_string(id) + " committed " +
                                 std::to_string(seq) + " after " + std::to_string(n.applied));
  n.applied = seq;
  if (trace_) std::printf("%6lu node %u commits %lu '%s'\n", (unsigned long)now_, id, (unsigned long)seq, e.payload.c_str());
  auto [it, fresh] = committed_.emplace(seq, e.payload);
  if (fresh) ++result_.commits;
  if (fresh) {
    auto [at, first] = committed_seq_.emplace(e.payload, seq);
    if (!first)
      fail("'" + e.payload + "' committed twice, as seq " + std::to_string(at->second) +
           " and " + std::to_string(seq));
  }
  if (!fresh && it->second != e.payload)
    fail("seq " + std::to_string(seq) + " committed as '" + it->second + "' and as '" +
         e.payload + "' (node " + std::to_string(id) + ")");
  apply_state(n, seq, e);  // may throw PowerFailure: the node dies mid-event
}

// As a node's host does after each call into the core: hands it a committed
// membership change, and forgets the cluster state of a node that was
// removed (by its own event, or told so by a member's heartbeat).
void Sim::apply_membership(SimNode& n, bool was_in) {
  if (!n.core) return;
  auto& states = n.state->state().states;
  auto it = states.find("membership");
  if (it != states.end() && !it->second.empty()) {
    uint64_t seq = std::stoull(it->second.substr(0, it->second.find('|')));
    if (seq > n.core->durable().nodes_seq)
      n.core->set_nodes(MembershipRsm::parse(it->second.substr(it->second.find('|') + 1)), seq);
  }
  if (was_in && !n.core->in_cluster()) {
    ++result_.removals;  // it keeps its state
    ++n.forgets;         // but not its proposals
  }
}

void Sim::do_fault() {
  // Partition, heal, cut one link one way, crash or restart: a seeded mix.
  unsigned pick = static_cast<unsigned>(rng_() % (5 + crash_weight_ * 2));
  std::vector<NodeId> up, down;
  for (auto& [id, n] : nodes_) (n.core ? up : down).push_back(id);
  if (pick == 0 || pick == 1) {
    blocked_.clear();
    std::set<NodeId> side;
    for (NodeId id : all_)
      if (rng_() % 2) side.insert(id);
    for (NodeId a : all_)
      for (NodeId b : all_)
        if (a != b && side.count(a) != side.count(b)) blocked_.insert({a, b});
    ++result_.partitions;
  } else if (pick == 2) {
    blocked_.clear();
  } else if (pick == 3) {
    NodeId a = all_[rng_() % all_.size()], b = all_[rng_() % all_.size()];
    if (a != b) blocked_.insert({a, b});
  } else if (pick == 4 || down.size() > 0) {
    if (!down.empty() && (pick == 4 || rng_() % 2)) {
      boot(nodes_[down[rng_() % down.size()]]);
    } else if (!up.empty()) {
      crash(nodes_[up[rng_() % up.size()]]);
    }
  } else if (!up.empty()) {
    crash(nodes_[up[rng_() % up.size()]]);
  }
}

void Sim::propose_some() {
  NodeId id = all_[rng_() % all_.size()];
  SimNode& n = nodes_[id];
  if (!n.core) return;
  std::string payload = "n" + std::to_string(id) + "-" + std::to_string(++proposals_);
  try {
    propose_at(n, payload);  // a lone boss commits at once, and may lose power
  } catch (const PowerFailure&) {
    crash(n);
  }
}

ClusterModel Sim::make_ownership_model() {
  ClusterModel c;
  for (uint32_t g = 0; g < 2; ++g) {
    IoGroupConfig group;
    group.id = 100 + g;
    group.name = "g" + std::to_string(g);
    group.nodes = {2 * g + 1, 2 * g + 2};
    c.iogrps.push_back(group);
  }
  for (uint32_t v = 1; v <= 4; ++v) {
    VdiskConfig vd;
    vd.id = v;
    vd.name = "v" + std::to_string(v);
    vd.iogrp_id = v <= 2 ? 100 : 101;
    vd.preferred_node = v;
    c.vdisks.push_back(vd);
  }
  return c;
}

// No vdisk is executed by two nodes that both hold a lease: ownership moves
// only with generations, and leases never overlap across them.
void Sim::check_ownership(const std::vector<std::pair<NodeId, GenId>>& serving) {
  if (serving == last_serving_) return;
  last_serving_ = serving;
  std::map<uint32_t, NodeId> executing;
  for (const auto& [id, gen] : serving) {
    RoutePolicy p;
    p.self = id;
    p.generation = gen.number;
    p.members = nodes_[id].core->members();
    auto table = build_routes(ownership_model_, p);
    for (const auto& [vdisk, route] : table->vdisks) {
      if (!table->local(vdisk) || route.group == 0) continue;
      auto [it, fresh] = executing.emplace(vdisk, id);
      if (!fresh)
        fail("vdisk " + std::to_string(vdisk) + " is executed by nodes " +
             std::to_string(it->second) + " and " + std::to_string(id) + " at once");
    }
  }
}

void Sim::check_invariants() {
  // Leases: everybody serving is in one generation.
  std::optional<GenId> serving;
  NodeId serving_node = 0;
  std::vector<std::pair<NodeId, GenId>> serving_nodes;
  for (auto& [id, n] : nodes_) {
    if (!n.core) continue;
    GenId g = n.core->generation();
    // (Generation 0 is no generation: founding and removed nodes differ.)
    auto [it, fresh] = generations_.emplace(g, n.core->members());
    if (!fresh && it->second != n.core->members() && g.number != 0)
      fail("generation " + std::to_string(g.number) + "/" + std::to_string(g.boss) +
           " has two memberships (" + std::to_string(it->second.size()) + " members, and " +
           std::to_string(n.core->members().size()) + " on node " + std::to_string(id) + ")");
    if (fresh) ++result_.generations;
    if (n.core->lease_valid()) {
      if (serving && *serving != g)
        fail("nodes " + std::to_string(serving_node) + " and " + std::to_string(id) +
             " both hold leases, in generations " + std::to_string(serving->number) + "/" +
             std::to_string(serving->boss) + " and " + std::to_string(g.number) + "/" +
             std::to_string(g.boss));
      serving = g;
      serving_node = id;
      serving_nodes.emplace_back(id, g);
    }
    const StateCopy& a = n.copies[0];
    const StateCopy& b = n.copies[1];
    // A ahead of B by one event at most, or by more in the middle of a
    // snapshot install (A is written first); never behind.
    if (a.seq < b.seq)
      fail("node " + std::to_string(id) + " has copies A at " + std::to_string(a.seq) +
           " and B at " + std::to_string(b.seq));
    if (n.state && n.state->applied() < n.disk.committed)
      fail("node " + std::to_string(id) + " left committed events unapplied");
    const Durable& d = n.disk;
    if (d.base > d.committed) fail("node " + std::to_string(id) + " dropped uncommitted entries");
    for (uint64_t s = d.base + 1; s <= d.committed; ++s)
      if (!d.log.count(s)) {
        fail("node " + std::to_string(id) + " has committed " + std::to_string(d.committed) +
             " but no entry " + std::to_string(s) + " on disk");
        break;
      }
  }
  check_ownership(serving_nodes);
}

void Sim::check_progress() {
  if (trace_)
    for (auto& [id, n] : nodes_) {
      if (!n.core) continue;
      auto set = [](const NodeSet& s) {
        std::string o;
        for (NodeId x : s) o += std::to_string(x) + ",";
        return o;
      };
      const Durable& d = n.core->durable();
      std::printf("node %u: in %d nodes %s@%lu gen %lu/%u members %s open %d est %lu/%u %s "
                  "committed %lu candidate %s view %s\n",
                  id, n.core->in_cluster(), set(d.nodes).c_str(), (unsigned long)d.nodes_seq,
                  (unsigned long)d.gen.number, d.gen.boss, set(d.members).c_str(),
                  n.core->open(), (unsigned long)d.established.number, d.established.boss,
                  set(d.established_members).c_str(), (unsigned long)d.committed,
                  set(n.core->candidate()).c_str(), set(n.core->view()).c_str());
    }
  NodeSet up;
  for (NodeId id : all_)
    if (id != left_down_) up.push_back(id);
  for (NodeId id : up) {
    SimNode& n = nodes_[id];
    if (!n.core->open() || n.core->members() != up) {
      fail("no progress after the heal: node " + std::to_string(id) + " is " +
           (n.core->open() ? "open" : "not open") + " in a generation of " +
           std::to_string(n.core->members().size()) + " nodes, " +
           std::to_string(up.size()) + " are up");
      return;
    }
  }
  uint64_t seq = 0;
  for (auto& [s, payload] : committed_)
    if (payload == marker_) seq = s;
  if (marker_.empty() || seq == 0) {
    fail("the event proposed after the heal was never committed");
    return;
  }
  for (NodeId id : up)
    if (nodes_[id].applied < seq)
      fail("node " + std::to_string(id) + " never applied seq " + std::to_string(seq));
  // No proposal is lost while its node lives (and stays in the cluster).
  for (auto& [payload, by] : accepted_)
    if (nodes_[by.first].forgets == by.second && !committed_seq_.count(payload)) {
      fail("'" + payload + "', taken by node " + std::to_string(by.first) +
           ", was never committed");
      return;
    }
  for (NodeId id : up)
    if (size_t n = nodes_[id].core->proposals_pending())
      fail("node " + std::to_string(id) + " still resends " + std::to_string(n) +
           " proposals that were committed");
}

void Sim::step(const Event& e) {
  switch (e.kind) {
    case Event::tick: {
      SimNode& n = nodes_[e.to];
      if (!n.core) break;  // crashed: its ticks stop; boot schedules new ones
      bool was_in = n.core->in_cluster();
      try {
        n.core->tick();
      } catch (const PowerFailure&) {
        crash(n);
        break;
      }
      apply_membership(n, was_in);
      schedule_tick(e.to);
      break;
    }
    case Event::deliver: {
      SimNode& n = nodes_[e.to];
      if (n.core && !blocked_.count({e.from, e.to})) {
        if (trace_) trace(e);
        bool was_in = n.core->in_cluster();
        try {
          n.core->receive(e.from, *e.message);
          apply_membership(n, was_in);
        } catch (const PowerFailure&) {
          crash(n);
        }
      }
      break;
    }
    case Event::fault:
      if (now_ < opt_.fault_ms) {
        do_fault();
        push({now_ + fault_gap_ / 2 + rng_() % fault_gap_, 0, Event::fault});
      }
      break;
  }
}

SimResult Sim::run() {
  uint64_t end = opt_.fault_ms + opt_.settle_ms;
  uint64_t next_proposal = 50;
  bool healed = false;
  uint64_t marker_at = opt_.fault_ms + opt_.settle_ms / 2;
  while (!queue_.empty() && result_.ok) {
    Event e = queue_.top();
    queue_.pop();
    if (e.at > end) break;
    now_ = e.at;
    if (!healed && now_ >= opt_.fault_ms) {
      healed = true;
      running_ = false;  // no more power failures either
      blocked_.clear();
      for (auto& [id, n] : nodes_)
        if (!n.core) boot(n);
      kill_one_ = rng_() % 2;
    }
    while (next_proposal <= now_) {
      if (now_ < opt_.fault_ms) propose_some();
      next_proposal += 50;
    }
    // Half the seeds then kill one node (perhaps the boss) of the healthy
    // cluster for good: the others, a majority of the generation that was
    // serving, must make progress without it. (Killed earlier, it might have
    // been half of the last generation, which must stall.)
    if (healed && kill_one_ && !left_down_ && now_ >= opt_.fault_ms + opt_.settle_ms / 4) {
      bool all_in = true;
      for (auto& [id, n] : nodes_)
        if (!n.core || !n.core->open() || n.core->members() != all_) all_in = false;
      if (all_in) {
        left_down_ = all_[rng_() % all_.size()];
        crash(nodes_[left_down_]);
        marker_at = std::max(marker_at, now_ + 1);
      } else {
        kill_one_ = false;  // not healthy yet: progress is judged with everybody
      }
    }
    if (membership_ && now_ < opt_.fault_ms && now_ >= next_membership_) {
      next_membership_ = now_ + 300 + rng_() % 1200;
      change_membership(std::nullopt);
    }
    // After the heal, every node is configured again before the marker.
    bool all_configured = !membership_;
    if (membership_) {
      for (auto& [s, payload] : committed_)
        if (payload.rfind("nodes:", 0) == 0) all_configured = MembershipRsm::parse(payload) == all_;
      if (committed_.empty() || !std::any_of(committed_.begin(), committed_.end(), [](auto& c) {
            return c.second.rfind("nodes:", 0) == 0;
          }))
        all_configured = true;  // never changed
    }
    if (healed && !all_configured && now_ >= readd_at_) {
      readd_at_ = now_ + 500;
      change_membership(all_);
    }
    // Offer the marker until a node with quorum takes it (again only if
    // that node forgets it: it resends it until it is committed).
    bool marker_held = false;
    if (auto it = accepted_.find("marker"); it != accepted_.end())
      marker_held = nodes_[it->second.first].forgets == it->second.second;
    if (healed && all_configured && !marker_held && now_ >= marker_at) {
      for (auto& [id, n] : nodes_)
        if (n.core && propose_at(n, "marker")) {
          marker_ = "marker";
          break;
        }
      marker_at = now_ + 50;
    }
    step(e);
    check_invariants();
  }
  if (result_.ok) check_progress();
  return result_;
}

}  // namespace

SimResult run_simulation(const SimOptions& options) {
  Sim sim(options);
  return sim.run();
}

struct ScriptedCluster::Impl {
  explicit Impl(const SimOptions& o) : sim(o) {}
  Sim sim;
};

ScriptedCluster::ScriptedCluster(unsigned nodes, CoreConfig core, bool quorum_device,
                                 bool fresh) {
  SimOptions o;
  o.fresh = fresh;
  o.nodes = nodes;
  o.quorum_device = quorum_device;
  o.scripted = true;
  o.core = core;
  impl_ = std::make_unique<Impl>(o);
}
ScriptedCluster::~ScriptedCluster() = default;
void ScriptedCluster::run_for(uint64_t ms) { impl_->sim.run_until(impl_->sim.now() + ms); }
void ScriptedCluster::crash(NodeId id) { impl_->sim.crash_node(id); }
void ScriptedCluster::restart(NodeId id) { impl_->sim.restart_node(id); }
void ScriptedCluster::isolate(NodeId id) { impl_->sim.isolate(id); }
void ScriptedCluster::heal() { impl_->sim.heal(); }
ClusterCore* ScriptedCluster::node(NodeId id) { return impl_->sim.core(id); }
bool ScriptedCluster::propose(NodeId id, const std::string& payload) {
  ClusterCore* c = node(id);
  return c && c->propose(payload);
}
bool ScriptedCluster::committed_anywhere(const std::string& payload) const {
  for (auto& [seq, p] : impl_->sim.committed_events())
    if (p == payload) return true;
  return false;
}
const std::map<uint64_t, std::string>& ScriptedCluster::committed_events() const {
  return impl_->sim.committed_events();
}
uint64_t ScriptedCluster::now() const { return impl_->sim.now(); }
const SimResult& ScriptedCluster::result() const { return impl_->sim.result(); }

}  // namespace sve::cluster::sim

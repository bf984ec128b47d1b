#pragma once
// The cluster protocol's vocabulary: node ids, generations, log entries and
// the messages nodes exchange. Plain data: the protocol core runs inside the
// node's actors and inside the deterministic simulator alike. Each type
// serialises with msgpack (codec.hpp) for the wire between nodes.
#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <msgpack.hpp>

namespace sve::cluster {

using NodeId = uint32_t;
using NodeSet = std::vector<NodeId>;  // sorted, no duplicates

// One incarnation of the cluster: a number and the boss that formed it. Two
// groups that both formed "generation n" (one of them never opened) are
// told apart by the boss, so no two different generations share an id.
struct GenId {
  uint64_t number = 0;
  NodeId boss = 0;
  auto operator<=>(const GenId&) const = default;
  MSGPACK_DEFINE(number, boss);
};

struct Entry {
  GenId gen;            // the generation that last prepared it
  std::string payload;
  // The members of the generation that first ordered it (never restamped):
  // an RSM may judge the event by them, the same on every node (a removal
  // that would leave that generation without a majority is refused).
  std::vector<NodeId> members;
  bool operator==(const Entry&) const = default;
  MSGPACK_DEFINE(gen, payload, members);
};

// A node's view: the nodes it can exchange messages with, versioned so the
// newest copy wins as views are flooded (incarnation first: a restarted
// node's counter starts again).
struct View {
  uint64_t incarnation = 0;
  uint64_t counter = 0;
  NodeSet nodes;
  bool newer_than(const View& o) const {
    return incarnation != o.incarnation ? incarnation > o.incarnation : counter > o.counter;
  }
  MSGPACK_DEFINE(incarnation, counter, nodes);
};

// What every node sends every heartbeat: its link-state database, the
// partition it computes from it, and the generations it knows.
struct Heartbeat {
  std::string cluster;  // the cluster's id: a node ignores other clusters
  NodeSet nodes;        // the configured nodes, as the sender knows them
  uint64_t nodes_seq = 0;  // the event that made them so
  std::map<NodeId, View> views;
  NodeSet candidate;  // empty: this node is in no viable partition
  GenId established;  // the last generation it knows to have opened
  NodeSet established_members;
  GenId joined;       // the last generation it joined
  bool open = false;  // and whether it serves in it
  MSGPACK_DEFINE(cluster, nodes, nodes_seq, views, candidate, established, established_members,
                 joined, open);
};

struct NewGen {  // boss -> members: join this generation
  GenId gen;
  NodeSet members;
  bool tiebreak = false;  // an exact half, backed by the quorum device
  MSGPACK_DEFINE(gen, members, tiebreak);
};
// A node that has dropped committed entries from its log (compaction)
// stands for them with a snapshot: its applied cluster state at
// snapshot_seq (its committed point). Empty while it has dropped nothing.
struct GenAck {  // member -> boss: joined; here is my log
  GenId gen;
  GenId established;
  NodeSet established_members;
  uint64_t committed = 0;
  std::map<uint64_t, Entry> log;
  uint64_t snapshot_seq = 0;
  std::string snapshot;
  MSGPACK_DEFINE(gen, established, established_members, committed, log, snapshot_seq, snapshot);
};
struct Install {  // boss -> members: the log of the new generation
  GenId gen;
  uint64_t committed = 0;  // entries up to here were committed before
  std::map<uint64_t, Entry> log;  // from snapshot_seq + 1 on
  uint64_t snapshot_seq = 0;
  std::string snapshot;  // for members that had not committed snapshot_seq
  MSGPACK_DEFINE(gen, committed, log, snapshot_seq, snapshot);
};
struct InstallAck {
  GenId gen;
  MSGPACK_DEFINE(gen);
};
struct Propose {  // any node -> boss
  GenId gen;  // the sender's generation: a boss takes only those of its own
  std::string payload;
  MSGPACK_DEFINE(gen, payload);
};
struct Prepare {  // phase 1
  GenId gen;
  uint64_t seq = 0;
  Entry entry;
  MSGPACK_DEFINE(gen, seq, entry);
};
struct Vote {
  GenId gen;
  uint64_t seq = 0;
  MSGPACK_DEFINE(gen, seq);
};
// Phase 2. `age_ms`: how long ago, on the boss's clock, the boss sent the
// prepare of `seq`. A member measures its lease from then, so a late or
// resent commit never stretches a lease.
struct Commit {
  GenId gen;
  uint64_t seq = 0;
  uint64_t age_ms = 0;
  MSGPACK_DEFINE(gen, seq, age_ms);
};

// Lease renewal without a log entry (so that an idle cluster's log does not
// grow): the boss asks every member to confirm that it is in the generation
// and has every event committed when asked; once all have, it tells them
// how long ago it asked, and each measures its lease from then, as from a
// commit.
struct Renew {
  GenId gen;
  uint64_t id = 0;
  uint64_t committed = 0;  // the boss's, when it asked
  MSGPACK_DEFINE(gen, id, committed);
};
struct Renewed {
  GenId gen;
  uint64_t id = 0;
  MSGPACK_DEFINE(gen, id);
};
struct Lease {
  GenId gen;
  uint64_t id = 0;
  uint64_t committed = 0;
  uint64_t age_ms = 0;
  MSGPACK_DEFINE(gen, id, committed, age_ms);
};

using Message = std::variant<Heartbeat, NewGen, GenAck, Install, InstallAck, Propose, Prepare,
                             Vote, Commit, Renew, Renewed, Lease>;

}  // namespace sve::cluster

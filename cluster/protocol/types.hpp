#pragma once
// The cluster protocol's vocabulary: node ids, generations, log entries and
// the messages nodes exchange. Plain data: the protocol core runs inside the
// node's actors and inside the deterministic simulator alike.
#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

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
};

struct Entry {
  GenId gen;            // the generation that last prepared it
  std::string payload;  // empty: a lease renewal
  bool operator==(const Entry&) const = default;
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
};

// What every node sends every heartbeat: its link-state database, the
// partition it computes from it, and the generations it knows.
struct Heartbeat {
  std::map<NodeId, View> views;
  NodeSet candidate;  // empty: this node is in no viable partition
  GenId established;  // the last generation it knows to have opened
  NodeSet established_members;
  GenId joined;       // the last generation it joined
  bool open = false;  // and whether it serves in it
};

struct NewGen {  // boss -> members: join this generation
  GenId gen;
  NodeSet members;
};
struct GenAck {  // member -> boss: joined; here is my log
  GenId gen;
  GenId established;
  NodeSet established_members;
  uint64_t committed = 0;
  std::map<uint64_t, Entry> log;
};
struct Install {  // boss -> members: the log of the new generation
  GenId gen;
  uint64_t committed = 0;  // entries up to here were committed before
  std::map<uint64_t, Entry> log;
};
struct InstallAck {
  GenId gen;
};
struct Propose {  // any node -> boss
  std::string payload;
};
struct Prepare {  // phase 1
  GenId gen;
  uint64_t seq = 0;
  Entry entry;
};
struct Vote {
  GenId gen;
  uint64_t seq = 0;
};
// Phase 2. `age_ms`: how long ago, on the boss's clock, the boss sent the
// prepare of `seq`. A member measures its lease from then, so a late or
// resent commit never stretches a lease.
struct Commit {
  GenId gen;
  uint64_t seq = 0;
  uint64_t age_ms = 0;
};

using Message = std::variant<Heartbeat, NewGen, GenAck, Install, InstallAck, Propose, Prepare,
                             Vote, Commit>;

}  // namespace sve::cluster

#pragma once
// Faults on this node's cluster network links, for the chaos monkey: per
// peer, for a while, messages to it are dropped, delayed or duplicated at a
// given rate, or the link is cut both ways (a partition). The cluster actor
// asks before each message it sends or takes in; the monkey sets them from
// its own thread. The protocol is built for such a network (it resends what
// matters), so these test it, they do not break its rules.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>

namespace sve {

struct LinkFault {
  uint32_t drop_percent = 0;
  uint32_t duplicate_percent = 0;
  uint32_t delay_ms = 0;
  bool cut = false;
  uint64_t until_ms = 0;  // steady clock
  bool channel_cut = false;  // only the data channel's connections (io/channel/)
  bool channel_stall = false;  // this node stops reading its data channel from the peer
  uint32_t channel_delay_ms = 0;  // this node's frames to the peer leave this much late
};

class NetFaults {
 public:
  struct Outgoing {
    bool drop = false;
    bool duplicate = false;
    uint32_t delay_ms = 0;
  };

  void set(uint32_t peer, LinkFault fault);
  void clear();
  Outgoing outgoing(uint32_t peer, uint64_t now_ms);
  bool drop_incoming(uint32_t peer, uint64_t now_ms);
  // Whether this node's data channel to `peer` must be down now (a cut of
  // the channel alone, or of the whole link).
  bool channel_cut(uint32_t peer, uint64_t now_ms);
  // How long this node must still not read its data channel's connections
  // with `peer` (0: read now).
  uint64_t channel_stall_ms(uint32_t peer, uint64_t now_ms);
  // How late this node's data channel frames to `peer` must leave (0: now).
  uint32_t channel_delay_ms(uint32_t peer, uint64_t now_ms);

 private:
  const LinkFault* active(uint32_t peer, uint64_t now_ms) const;

  std::mutex mu_;
  std::map<uint32_t, LinkFault> links_;
  std::minstd_rand rng_{12345};
  std::atomic<bool> any_{false};
};

}  // namespace sve

#include "cluster/rsm/replicated_state.hpp"

#include <stdexcept>

#include "util/bounded_unpack.hpp"

namespace sve::cluster {

ReplicatedState::ReplicatedState(NodeId self, CopyStore& store, std::function<bool()> online,
                                 std::function<void(uint64_t, const Response&)> deliver)
    : self_(self), store_(store), online_(std::move(online)), deliver_(std::move(deliver)) {}

void ReplicatedState::recover() {
  StateCopy a = store_.read_copy(0);
  StateCopy b = store_.read_copy(1);
  // A is written first, so A is ahead by one event or they are equal.
  const StateCopy& winner = a.seq >= b.seq ? a : b;
  copy_[0] = copy_[1] = winner;
  if (!(a == b)) store_.write_copy(a.seq >= b.seq ? 1 : 0, winner);  // re-derive the other
}

void ReplicatedState::apply(uint64_t seq, const Entry& entry) {
  if (seq <= copy_[1].seq) return;  // applied before a restart
  if (seq != copy_[1].seq + 1)
    throw std::logic_error("event " + std::to_string(seq) + " applied after " +
                           std::to_string(copy_[1].seq));
  apply_to(0, seq, entry, false);
  apply_to(1, seq, entry, true);
}

void ReplicatedState::restore(const StateCopy& copy) {
  if (copy.seq <= copy_[1].seq) return;  // not behind after all
  copy_[0] = copy;
  store_.write_copy(0, copy);
  copy_[1] = copy;
  store_.write_copy(1, copy);
}

std::string ReplicatedState::encode(const StateCopy& copy) {
  msgpack::sbuffer out;
  msgpack::pack(out, copy);
  return std::string(out.data(), out.size());
}

std::optional<StateCopy> ReplicatedState::decode(const std::string& bytes) {
  try {
    return bounded_unpack(bytes.data(), bytes.size()).get().as<StateCopy>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void ReplicatedState::apply_to(int which, uint64_t seq, const Entry& entry, bool gate_open) {
  StateCopy& copy = copy_[which];
  std::vector<Response> responses;
  for (Rsm* rsm : rsms_) {
    std::string& state = copy.states[rsm->name()];
    rsm->apply(seq, entry, state, responses);
  }
  copy.seq = seq;
  store_.write_copy(which, copy);
  // The call gate: once (second application), here only, online only.
  if (!gate_open) return;
  bool online = online_();
  for (const Response& r : responses)
    if (r.target == self_ && online) deliver_(seq, r);
}

}  // namespace sve::cluster

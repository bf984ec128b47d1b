#pragma once
// Binds the I/O protocol interfaces to an actor: submit() and io_done()
// become io_submit / io_done messages in the actor's mailbox. A facility
// holds its neighbours as IoServer / IoClient and never sees their types.
//
// On a reactor thread the message is queued on that reactor (no lock, no
// wake-up) when the target lives on the same core; the reactor scheduler
// routes it to the target's core otherwise, and counts the crossing.
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"

namespace sve {

class ActorPort final : public IoServer, public IoClient {
 public:
  ActorPort() = default;
  explicit ActorPort(caf::actor target) : target_(std::move(target)) {}
  void bind(caf::actor target) { target_ = std::move(target); }
  const caf::actor& target() const { return target_; }

  void submit(IoRequestPtr request) override { send(io_submit_atom::value, std::move(request)); }
  void io_done(IoRequestPtr request) override { send(io_done_atom::value, std::move(request)); }

 private:
  template <class Atom>
  void send(Atom atom, IoRequestPtr request) {
    caf::actor_cast<caf::abstract_actor*>(target_)->enqueue(
        caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, atom,
                                  std::move(request)),
        current_reactor_unit());
  }

  caf::actor target_;
};

}  // namespace sve

#pragma once
// Binds the I/O protocol interfaces to an actor: submit() and io_done()
// become io_submit / io_done messages in the actor's mailbox. A facility
// holds its neighbours as IoServer / IoClient and never sees their types.
#include "actors/messages.hpp"

namespace sve {

class ActorPort final : public IoServer, public IoClient {
 public:
  ActorPort() = default;
  explicit ActorPort(caf::actor target) : target_(std::move(target)) {}
  void bind(caf::actor target) { target_ = std::move(target); }
  const caf::actor& target() const { return target_; }

  void submit(IoRequestPtr request) override {
    caf::anon_send(target_, io_submit_atom::value, std::move(request));
  }
  void io_done(IoRequestPtr request) override {
    caf::anon_send(target_, io_done_atom::value, std::move(request));
  }

 private:
  caf::actor target_;
};

}  // namespace sve

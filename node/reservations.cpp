// SCSI reservations through the node (docs/iscsi.md): the configuration
// actor applies a host's request to the committed model and commits it;
// the command is answered once every node's host ports enforce the new
// state, so that a host told GOOD for a RESERVE on one node is never let
// through on another by a node that has not caught up.
#include <chrono>
#include <future>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/messages.hpp"
#include "node/node_impl.hpp"

namespace sve {
namespace {

// How long a reservation waits for every node to enforce it before it is
// answered anyway (a node that lags this much is likely leaving the
// cluster, and then serves nothing). A PREEMPT AND ABORT waits longer: a
// node enforces it once the preempted tasks are back from its back end,
// which may be slow (a host's own command timeout is longer still).
constexpr auto kEnforceWait = std::chrono::milliseconds(2000);
constexpr auto kAbortWait = std::chrono::milliseconds(10000);
constexpr auto kEnforcePoll = std::chrono::milliseconds(1);

}  // namespace

void Node::Impl::reserve(uint32_t vdisk, const Nexus& who, const ReservationRequest& request,
                         std::function<void(ReservationOutcome)> done) {
  caf::anon_send(config_actor, run_atom::value, CoreTask([this, vdisk, who, request, done] {
    auto applied = config->apply_reservation(vdisk, who, request);
    if (!applied) {
      // Not committed (no quorum, a store that fails): the host retries.
      spdlog::warn("iscsi: a reservation request of {} for vdisk {} was not committed: {}",
                   who.initiator, vdisk, applied.error().message);
      return done({ReservationResult::busy, false});
    }
    ReservationOutcome outcome = applied.value();
    if (!outcome.changed) return done(outcome);
    publish();
    const auto wait = request.kind == ReservationRequest::Kind::preempt_and_abort ? kAbortWait
                                                                                   : kEnforceWait;
    await_enforced(config->version(), wait, [done, outcome] { done(outcome); });
  }));
}

// The administrator is told the clear is done once a host's next command
// through any node meets it, as a host's PERSISTENT RESERVE OUT would be
// (or once a node has not caught up in kEnforceWait: it is likely leaving
// the cluster, and then serves nothing).
std::string Node::Impl::clear_reservations(const std::string& line) {
  std::string reply = call_config(line);
  auto parsed = nlohmann::json::parse(reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.value("ok", false)) return reply;
  auto enforced = std::make_shared<std::promise<void>>();
  std::future<void> done = enforced->get_future();
  // (On the configuration actor, after the commit it answered: its version
  // is at least the clear's.)
  caf::anon_send(config_actor, run_atom::value, CoreTask([this, enforced] {
    publish();
    await_enforced(config->version(), kEnforceWait, [enforced] { enforced->set_value(); });
  }));
  done.wait_for(kEnforceWait + std::chrono::seconds(1));
  return reply;
}

// Polls (every millisecond, for at most `wait`) this node's port and,
// through the interconnect, the other nodes' until they all follow
// `version`.
void Node::Impl::await_enforced(uint64_t version, std::chrono::milliseconds wait,
                                std::function<void()> done) {
  sys->spawn([this, version, wait, done](caf::event_based_actor* self) -> caf::behavior {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    auto finish = [self, done, version, wait](bool all) {
      if (!all)
        spdlog::warn("iscsi: a reservation change (configuration {}) is answered before every "
                     "node enforces it: one did not catch up in {} ms",
                     version, wait.count());
      done();
      self->quit();
    };
    auto late = [deadline] { return std::chrono::steady_clock::now() >= deadline; };
    self->send(self, tick_atom::value);
    return {
        [=, this](tick_atom) {
          const bool here = !iscsi || iscsi->applied_version() >= version;
          if (!here) {
            if (late()) return finish(false);
            self->delayed_send(self, kEnforcePoll, tick_atom::value);
            return;
          }
          if (!interconnect) return finish(true);
          self->request(interconnect, std::chrono::seconds(3), applied_atom::value, version)
              .then(
                  [=](bool all) {
                    if (all || late()) return finish(all);
                    self->delayed_send(self, kEnforcePoll, tick_atom::value);
                  },
                  [=](caf::error&) { finish(false); });
        },
    };
  });
}

}  // namespace sve

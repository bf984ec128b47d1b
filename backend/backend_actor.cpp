// The back-end I/O actor: the single submitter of its core's io_uring ring.
// Completions are reaped by the core's reactor loop and go straight back to
// the facility that sent each request, without passing through this actor.
#include "actors/probe_note.hpp"
#include "actors/messages.hpp"
#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "io/reactor/core_io.hpp"

namespace sve {
namespace {

struct BackendState {
  UringEngine* engine = nullptr;
  ActorProbe probe;
  static inline const char* name = "backend";
};

caf::behavior backend_actor(caf::stateful_actor<BackendState>* self, CoreIo* core) {
  self->state.engine = &core->ring();
  self->state.probe = {"backend/" + std::to_string(core->index()), "I/O",
                       static_cast<int>(core->index())};
  auto& probe = self->state.probe;
  return {
      [=, &probe](io_submit_atom, IoRequestPtr& request) {
        note(self, probe);
        self->state.engine->submit(std::move(request));
      },
      [=, &probe](attach_atom, uint32_t mdisk_id, BlockDevicePtr& device) {
        note(self, probe);
        self->state.engine->attach(mdisk_id, std::move(device));
      },
      [=, &probe](detach_atom, uint32_t mdisk_id) {
        note(self, probe);
        self->state.engine->detach(mdisk_id);
      },
      [=](run_atom, CoreTask& task) { task(); },
      [=, &probe](trace_atom, uint32_t n) { probe.start_trace(n); },
      [=, &probe](inspect_atom) {
        const UringStats& r = self->state.engine->stats();
        return probe.answer(self->mailbox().size(),
                            {{"ring_in_flight", self->state.engine->in_flight()},
                             {"submitted", r.submitted}, {"completed", r.completed},
                             {"errors", r.errors}, {"fixed_buffer_ops", r.fixed_buffer_ops},
                             {"buffered_fallbacks", r.buffered_fallbacks},
                             {"inline_completions", r.inline_completions}});
      },
  };
}

}  // namespace

caf::actor spawn_backend_actor(caf::actor_system& sys, CoreIo& core) {
  auto actor = sys.spawn<caf::lazy_init>(backend_actor, &core);
  pin_to_core(actor, core.index());
  return actor;
}

void run_on_core(const caf::actor& actor, std::function<void()> task) {
  caf::anon_send(actor, run_atom::value, CoreTask(std::move(task)));
}

}  // namespace sve

// The virtualization facility as an actor: requests from its IOClient arrive
// as io_submit, completions of its pieces as io_done; a new configuration
// snapshot arrives as virt_map.
#include "actors/actor_port.hpp"
#include "actors/spawn.hpp"
#include "virt/virtualizer.hpp"

namespace sve {
namespace {

struct VirtState {
  std::shared_ptr<IoServer> lower;
  ActorPort self_port;  // where the pieces' completions come back
  std::unique_ptr<Virtualizer> virt;
  static inline const char* name = "virt";
};

caf::behavior virt_actor(caf::stateful_actor<VirtState>* self,
                         std::shared_ptr<IoServer> lower) {
  auto& st = self->state;
  st.lower = std::move(lower);
  st.self_port.bind(caf::actor_cast<caf::actor>(self));
  st.virt = std::make_unique<Virtualizer>(*st.lower, st.self_port);
  return {
      [=](io_submit_atom, IoRequestPtr& request) {
        self->state.virt->submit(std::move(request));
      },
      [=](io_done_atom, IoRequestPtr& piece) {
        self->state.virt->piece_done(std::move(piece));
      },
      [=](virt_map_atom, VirtMapPtr& map) { self->state.virt->set_map(std::move(map)); },
  };
}

}  // namespace

caf::actor spawn_virt_actor(caf::actor_system& sys, std::shared_ptr<IoServer> lower) {
  return sys.spawn(virt_actor, std::move(lower));
}

}  // namespace sve

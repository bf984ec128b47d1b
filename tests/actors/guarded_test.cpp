// The exception guard (actors/guarded.hpp): a handler that throws answers
// its request with an error and the actor handles its next message; CAF
// alone would end the actor.
#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <stdexcept>
#include <string>

#include "actors/guarded.hpp"

namespace {

using throw_atom = caf::atom_constant<caf::atom("throw")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using poke_atom = caf::atom_constant<caf::atom("poke")>;

struct GuardedState {
  std::string name = "guarded-test";
  int pokes = 0;
};

// (An argument, unused: CAF 0.17 binds a reference to a null tuple when a
// function is spawned with none, which UBSan reports.)
caf::behavior throwing_actor(caf::stateful_actor<GuardedState>* self, int) {
  return sve::guarded_behavior(
      self, &self->state.name,
      [](throw_atom, int n) -> int {
        if (n > 0) throw std::runtime_error("bad n");
        return n;
      },
      [=](poke_atom) {
        ++self->state.pokes;
        throw std::logic_error("poked");
      },
      [=](ping_atom) { return self->state.pokes; });
}

}  // namespace

TEST_CASE("an exception in a handler is answered as an error and the actor goes on") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor client{sys};
  auto actor = sys.spawn(throwing_actor, 0);

  bool got_error = false;
  client->request(actor, caf::infinite, throw_atom::value, 1)
      .receive([](int) { FAIL("a throwing handler answered a value"); },
               [&](const caf::error& e) {
                 got_error = true;
                 CHECK(sys.render(e).find("bad n") != std::string::npos);
               });
  CHECK(got_error);

  // An async message that throws is logged; nobody waits for an answer.
  client->send(actor, poke_atom::value);
  client->send(actor, poke_atom::value);

  int pokes = -1;
  client->request(actor, caf::infinite, ping_atom::value)
      .receive([&](int n) { pokes = n; }, [](const caf::error&) { FAIL("the actor is gone"); });
  CHECK(pokes == 2);

  int zero = -1;
  client->request(actor, caf::infinite, throw_atom::value, 0)
      .receive([&](int n) { zero = n; }, [](const caf::error&) { FAIL("the actor is gone"); });
  CHECK(zero == 0);
  client->send_exit(actor, caf::exit_reason::user_shutdown);
}

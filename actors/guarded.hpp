#pragma once
// No exception crosses an actor's top. CAF 0.17 ends an actor whose handler
// throws (the exception handler only chooses the exit reason), and with the
// actor goes a core's facility, the cluster control or the configuration
// process's service. `guarded_behavior` wraps every handler of a behavior:
// an unexpected exception is logged with the actor's name and the message
// it was handling, a request is answered with an error, and the actor goes
// on with its next message. Handlers that validate their input (the admin
// path) still answer their own errors; this is the net under them.
// CAF-side: included only by actor definitions.
#include <caf/all.hpp>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace sve {

namespace guard_detail {

// What a guarded handler returns for a handler returning R: R itself where
// R can carry an error, a caf::result otherwise.
template <class R>
struct answer {
  using type = caf::result<R>;
};
template <>
struct answer<void> {
  using type = void;  // an async message: nobody waits for an answer
};
template <>
struct answer<caf::message> {
  using type = caf::message;  // an error travels as a message holding it
};
template <class... Ts>
struct answer<caf::result<Ts...>> {
  using type = caf::result<Ts...>;
};
template <class... Ts>
struct answer<caf::typed_response_promise<Ts...>> {
  using type = caf::result<Ts...>;
};

void log_escaped(const std::string& actor, const std::string& message, const std::string& what);

template <class Self, class F, class R, class... Args>
auto wrap(Self* self, const std::string* name, F f, R (F::*)(Args...) const) {
  using Answer = typename answer<std::decay_t<R>>::type;
  return [self, name, f = std::move(f)](Args... args) -> Answer {
    std::string what = "not a std::exception";
    try {
      if constexpr (std::is_void_v<Answer>)
        f(std::forward<Args>(args)...);
      else
        return f(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      what = e.what();
      log_escaped(*name, caf::to_string(self->current_mailbox_element()->content()), what);
    } catch (...) {
      log_escaped(*name, caf::to_string(self->current_mailbox_element()->content()), what);
    }
    if constexpr (std::is_void_v<Answer>) {
      return;
    } else {
      caf::error err = caf::make_error(caf::sec::runtime_error,
                                       "internal error in " + *name + ": " + what);
      if constexpr (std::is_same_v<Answer, caf::message>)
        return caf::make_message(std::move(err));
      else
        return Answer{std::move(err)};
    }
  };
}

}  // namespace guard_detail

// `name` must outlive the actor (a string in its state, or a literal's).
template <class Self, class F>
auto guarded(Self* self, const std::string* name, F f) {
  return guard_detail::wrap(self, name, std::move(f), &F::operator());
}

template <class Self, class... Handlers>
caf::behavior guarded_behavior(Self* self, const std::string* name, Handlers... handlers) {
  return caf::behavior{guarded(self, name, std::move(handlers))...};
}

}  // namespace sve

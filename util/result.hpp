#pragma once
// A value or an error message: operating errors are returned, never thrown
// across component boundaries. Programmer errors are assertions.
#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace sve {

struct Error {
  std::string message;
  int code = 0;  // errno-style code where one applies, else 0
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { assert(ok()); return std::get<0>(v_); }
  const T& value() const { assert(ok()); return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

inline Error make_error(std::string message, int code = 0) {
  return Error{std::move(message), code};
}

// `what` failed with the current errno.
inline Error sys_error(const std::string& what) {
  int code = errno;
  return make_error(what + ": " + std::strerror(code), code);
}

}  // namespace sve

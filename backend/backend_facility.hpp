#pragma once
// The back end of a core's stack: the core's ring is the single submitter
// of block I/O to the mdisks attached to it. Completions are reaped by the
// core's reactor and go straight back to the facility that sent each
// request, not through this one.
#include "facility/facility.hpp"
#include "io/uring/uring_engine.hpp"

namespace sve {

class BackendFacility final : public Facility {
 public:
  explicit BackendFacility(UringEngine& ring) : ring_(ring) {}
  const char* kind() const override { return "backend"; }
  const char* role() const override { return "I/O"; }
  void submit(IoRequestPtr request) override { ring_.submit(std::move(request)); }
  UringEngine& ring() { return ring_; }
  nlohmann::json inspect() const override {
    const UringStats& r = ring_.stats();
    return {{"ring_in_flight", ring_.in_flight()}, {"submitted", r.submitted},
            {"completed", r.completed}, {"errors", r.errors},
            {"fixed_buffer_ops", r.fixed_buffer_ops},
            {"buffered_fallbacks", r.buffered_fallbacks},
            {"inline_completions", r.inline_completions}};
  }

 private:
  UringEngine& ring_;
};

}  // namespace sve

#pragma once
// One interface for every facility of the stack (front end -> forward ->
// atomic -> cache -> point-in-time copy -> thin -> virtualization -> back
// end, ordered in node/core_stack.cpp).
// A facility takes requests from the one above (IoServer::submit) and, if
// it passes them down, their completions from the one below
// (IoClient::io_done); it knows its neighbours only as IoServer and
// IoClient. Besides requests, every facility receives the same control:
// a new snapshot of the model and the routes, a tick with the time passed
// in, and an inspect for the debug shell. One generic actor
// (actors/facility_actor.hpp) runs any facility on its core, so a new
// facility is a class, not an actor.
//
// No CAF here: a facility is plain C++ and its unit tests run without an
// actor system (tests/unit/stack_test.cpp).
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "io/protocol.hpp"

namespace sve {

struct VirtMap;
struct RouteTable;

// What changed in the model as the data path sees it; a null part is
// unchanged.
struct FacilityView {
  std::shared_ptr<const VirtMap> map;       // every vdisk's extents
  std::shared_ptr<const RouteTable> routes;  // who owns each vdisk, cache modes
};

class Facility : public IoServer, public IoClient {
 public:
  // The name of its kind ("virt", "cache"): the debug shell shows it, per
  // core, as kind/core.
  virtual const char* kind() const = 0;
  // "facility", or what the debug shell should call it ("I/O").
  virtual const char* role() const { return "facility"; }
  // A request from the facility above.
  void submit(IoRequestPtr request) override = 0;
  // A completion from the facility below, for a request this one sent
  // (a facility that sends none never gets one).
  void io_done(IoRequestPtr request) override { (void)request; }
  virtual void set_view(const FacilityView& view) { (void)view; }
  // How often tick() is wanted (0: never), and the tick itself.
  virtual uint64_t tick_ms() const { return 0; }
  virtual void tick(uint64_t now_ms) { (void)now_ms; }
  // Its own state, for the debug shell's `inspect`.
  virtual nlohmann::json inspect() const = 0;
};

}  // namespace sve

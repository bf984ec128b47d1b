// The chaos-monkey actor: injects faults into its own node on a seeded
// schedule (node/chaos/chaos_plan.hpp) while it runs, logging each with
// its time and seed. Its faults act where this node meets the rest: its
// heartbeat link actors, its own process (which the configuration process
// must restart), its cluster network links, its mdisks. `svectl chaos run`
// starts one on every node. Its settings and its log live in the data dir,
// so a monkey whose fault restarted its process goes on in the next one.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "node/chaos/chaos_plan.hpp"
#include "actors/guarded.hpp"
#include "actors/messages.hpp"
#include "actors/probe_note.hpp"
#include "actors/spawn.hpp"
#include "faults/net_faults.hpp"
#include "faults/mdisk_faults.hpp"

namespace sve {
namespace {

using nlohmann::json;

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr uint64_t kResumeGraceMs = 3000;  // a restarted node rejoins first

struct ChaosState {
  static inline const char* name = "chaos";
  ChaosActorSetup setup;
  caf::actor cluster;  // null for a standalone node
  ActorProbe probe;
  std::optional<ChaosPlan> plan;
  PlannedFault pending;       // the next fault
  uint64_t due_ms = 0;        // when it is injected
  uint64_t done = 0;          // faults injected (or skipped) so far
  uint64_t started_ms = 0;    // wall clock, for the report
  std::map<std::string, uint64_t> by_kind;
  uint64_t skipped = 0;       // no target for the kind (no peer, no mdisk)
};

using Self = caf::stateful_actor<ChaosState>;

std::string state_path(Self* self) { return self->state.setup.data_dir + "/chaos.json"; }
std::string log_path(Self* self) { return self->state.setup.data_dir + "/chaos.log"; }

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

json settings_json(const ChaosSettings& s) {
  json kinds = json::array();
  for (FaultKind k : s.kinds) kinds.push_back(to_string(k));
  return {{"seed", s.seed}, {"faults", kinds}, {"rate_per_minute", s.rate_per_minute}};
}

// Written before each fault is injected: a fault that kills this process
// is on disk first, and the next process's monkey goes on after it.
void save(Self* self) {
  auto& st = self->state;
  json j = settings_json(st.plan->settings());
  j["done"] = st.done;
  j["started_ms"] = st.started_ms;
  j["by_kind"] = st.by_kind;
  j["skipped"] = st.skipped;
  std::string tmp = state_path(self) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    out.flush();
    if (!out) return;
  }
  ::rename(tmp.c_str(), state_path(self).c_str());
}

void append_log(Self* self, const json& entry) {
  std::ofstream out(log_path(self), std::ios::app);
  out << entry.dump() << "\n";
  out.flush();
}

void schedule(Self* self, uint64_t at_least_ms) {
  auto& st = self->state;
  st.pending = st.plan->next();
  st.due_ms = monotonic_ms() + std::max(st.pending.gap_ms, at_least_ms);
}

std::vector<uint32_t> peers(Self* self) {
  std::vector<uint32_t> out;
  if (!self->state.cluster) return out;
  caf::scoped_actor ask{self->system()};
  ask->request(self->state.cluster, std::chrono::seconds(2), members_atom::value)
      .receive(
          [&](std::vector<uint32_t>& ids) {
            for (uint32_t id : ids)
              if (id != self->state.setup.self) out.push_back(id);
          },
          [&](caf::error&) {});
  return out;
}

std::vector<std::pair<uint32_t, caf::actor>> heartbeat_links(Self* self) {
  std::vector<std::pair<uint32_t, caf::actor>> out;
  if (!self->state.cluster) return out;
  caf::scoped_actor ask{self->system()};
  ask->request(self->state.cluster, std::chrono::seconds(2), peer_atom::value)
      .receive(
          [&](std::vector<uint32_t>& ids, std::vector<caf::actor>& links) {
            for (size_t i = 0; i < ids.size() && i < links.size(); ++i)
              out.emplace_back(ids[i], links[i]);
          },
          [&](caf::error&) {});
  return out;
}

// Injects `f`; returns what it hit ("" when there was nothing to hit).
// A fault that ends this process does not return.
std::string inject(Self* self, const PlannedFault& f, json& entry) {
  auto& st = self->state;
  uint64_t until = monotonic_ms() + f.duration_ms;
  auto logged = [&](const std::string& target) {
    entry["target"] = target;
    append_log(self, entry);
    if (st.plan)
      spdlog::warn("chaos: fault {} (seed {}): {} {}", f.number, st.plan->settings().seed,
                   to_string(f.kind), target);
    else
      spdlog::warn("chaos: fault by hand: {} {}", to_string(f.kind), target);
    spdlog::default_logger()->flush();
  };
  switch (f.kind) {
    case FaultKind::kill_actor: {
      auto links = heartbeat_links(self);
      if (links.empty()) return "";
      auto& [peer, link] = links[f.target % links.size()];
      std::string target = "heartbeat/" + std::to_string(peer);
      logged(target);
      // As if it had failed (an exception): exit_reason::kill would take
      // its supervisor down with it, whatever that supervisor handles.
      self->send_exit(link, caf::exit_reason::unhandled_exception);
      return target;
    }
    case FaultKind::crash_io:
      logged("I/O process " + std::to_string(::getpid()));
      std::abort();
    case FaultKind::hang_io:
      logged("I/O process " + std::to_string(::getpid()));
      ::raise(SIGSTOP);  // the configuration process's watchdog ends it
      return "I/O process";
    case FaultKind::kill_node:
      // The node stays down for the fault's duration before it restarts.
      logged("I/O process " + std::to_string(::getpid()));  // down for duration_ms
      if (st.setup.hold_down) st.setup.hold_down(f.duration_ms);
      ::raise(SIGKILL);
      return "";
    case FaultKind::net_drop:
    case FaultKind::net_delay:
    case FaultKind::net_duplicate:
    case FaultKind::channel_cut:
    case FaultKind::channel_stall:
    case FaultKind::channel_delay: {
      auto ids = peers(self);
      if (ids.empty()) return "";
      uint32_t peer = ids[f.target % ids.size()];
      LinkFault fault;
      fault.until_ms = until;
      if (f.kind == FaultKind::net_drop) fault.drop_percent = f.intensity;
      if (f.kind == FaultKind::net_duplicate) fault.duplicate_percent = f.intensity;
      if (f.kind == FaultKind::net_delay) fault.delay_ms = f.intensity;
      fault.channel_cut = f.kind == FaultKind::channel_cut;
      fault.channel_stall = f.kind == FaultKind::channel_stall;
      if (f.kind == FaultKind::channel_delay) fault.channel_delay_ms = f.intensity;
      st.setup.net->set(peer, fault);
      std::string target =
          (f.kind == FaultKind::channel_cut || f.kind == FaultKind::channel_stall ||
                   f.kind == FaultKind::channel_delay
               ? "data channel to node "
               : "link to node ") +
          std::to_string(peer);
      logged(target);
      return target;
    }
    case FaultKind::partition: {
      auto ids = peers(self);
      if (ids.empty()) return "";
      LinkFault cut;
      cut.cut = true;
      cut.until_ms = until;
      for (uint32_t peer : ids) st.setup.net->set(peer, cut);
      std::string target = "node " + std::to_string(st.setup.self) + " from the others";
      logged(target);
      return target;
    }
    case FaultKind::mdisk_error:
    case FaultKind::mdisk_stall: {
      auto ids = st.setup.mdisk_ids ? st.setup.mdisk_ids() : std::vector<uint32_t>{};
      if (ids.empty()) return "";
      uint32_t id = ids[f.target % ids.size()];
      st.setup.mdisks->set(id, f.kind == FaultKind::mdisk_error ? MdiskFaults::Kind::error
                                                                 : MdiskFaults::Kind::stall,
                           until);
      std::string target = "mdisk " + std::to_string(id);
      logged(target);
      return target;
    }
  }
  return "";
}

void fire(Self* self) {
  auto& st = self->state;
  const PlannedFault f = st.pending;
  ++st.done;
  bool transient = !kills_process(f.kind) && f.kind != FaultKind::kill_actor;
  bool timed = transient || f.kind == FaultKind::kill_node;
  json entry{{"time_ms", wall_ms()},
             {"node", st.setup.self},
             {"seed", st.plan->settings().seed},
             {"number", f.number},
             {"kind", to_string(f.kind)}};
  if (timed) entry["duration_ms"] = f.duration_ms;
  if (f.kind == FaultKind::net_drop || f.kind == FaultKind::net_duplicate)
    entry["percent"] = f.intensity;
  if (f.kind == FaultKind::net_delay || f.kind == FaultKind::channel_delay)
    entry["delay_ms"] = f.intensity;
  ++st.by_kind[to_string(f.kind)];
  save(self);  // counted before it is injected: it may end this process
  if (inject(self, f, entry).empty()) {
    --st.by_kind[to_string(f.kind)];
    if (!st.by_kind[to_string(f.kind)]) st.by_kind.erase(to_string(f.kind));
    ++st.skipped;
    save(self);
  }
  // A transient fault runs out by itself; the next one comes after it.
  schedule(self, transient ? f.duration_ms : 0);
}

json recent_log(Self* self, size_t last) {
  std::ifstream in(log_path(self));
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) lines.push_back(std::move(j));
  }
  json out = json::array();
  for (size_t i = lines.size() > last ? lines.size() - last : 0; i < lines.size(); ++i)
    out.push_back(lines[i]);
  return out;
}

json report(Self* self, size_t log_entries = 50) {
  auto& st = self->state;
  json r{{"running", st.plan.has_value()}, {"node", st.setup.self}};
  if (st.plan) {
    r.update(settings_json(st.plan->settings()));
    r["injected"] = st.done - st.skipped;
    r["skipped"] = st.skipped;
    r["by_kind"] = st.by_kind;
    r["started_ms"] = st.started_ms;
    r["next_in_ms"] = st.due_ms > monotonic_ms() ? st.due_ms - monotonic_ms() : 0;
    r["next_kind"] = to_string(st.pending.kind);
  }
  r["log"] = recent_log(self, log_entries);
  return r;
}

void begin(Self* self, ChaosSettings settings, uint64_t done, uint64_t grace_ms) {
  auto& st = self->state;
  st.plan.emplace(std::move(settings));
  st.plan->skip(done);
  st.done = done;
  schedule(self, grace_ms);
}

std::string error(const std::string& message) {
  return json{{"ok", false}, {"error", message}}.dump();
}

// One fault now, by hand (svectl chaos inject): for tests that need a fault
// at a given moment, such as a stalled mdisk while a resync must wait.
std::string inject_now(Self* self, const json& request) {
  auto& st = self->state;
  auto kind = parse_fault_kind(request.value("kind", std::string()));
  if (!kind) return error("unknown fault kind '" + request.value("kind", std::string()) + "'");
  if (kills_process(*kind) && !st.setup.supervised)
    return error(std::string(to_string(*kind)) +
                 " needs sved's configuration process to restart the I/O process");
  PlannedFault f;
  f.kind = *kind;
  f.duration_ms = request.value("duration_ms", uint32_t{2000});
  f.target = request.value("target", uint32_t{0});
  f.intensity = request.value(
      "intensity", *kind == FaultKind::net_delay || *kind == FaultKind::channel_delay ? 200u : 50u);
  if (f.duration_ms < 1 || f.duration_ms > 600000)
    return error("--duration is 1 to 600000 ms");
  json entry{{"time_ms", wall_ms()}, {"node", st.setup.self}, {"seed", nullptr},
             {"number", 0}, {"kind", to_string(f.kind)}, {"by_hand", true},
             {"duration_ms", f.duration_ms}};
  std::string target = inject(self, f, entry);
  if (target.empty()) return error(std::string("no target for ") + to_string(f.kind) + " here");
  return json{{"ok", true}, {"result", entry}}.dump();
}

std::string handle(Self* self, const std::string& line) {
  auto& st = self->state;
  auto request = json::parse(line, nullptr, false);
  std::string cmd = request.is_object() ? request.value("cmd", "") : "";
  // The last 50 faults, or as many as asked for ("log": N).
  size_t entries = request.is_object() ? request.value("log", size_t{50}) : 50;
  if (cmd == "chaos.report") return json{{"ok", true}, {"result", report(self, entries)}}.dump();
  if (cmd == "chaos.stop") {
    json r = report(self, entries);
    st.plan.reset();
    st.setup.net->clear();
    st.setup.mdisks->clear();
    ::unlink(state_path(self).c_str());
    if (r["running"].get<bool>()) spdlog::warn("chaos: stopped after {} faults", st.done);
    return json{{"ok", true}, {"result", r}}.dump();
  }
  if (cmd == "chaos.inject") return inject_now(self, request);
  if (cmd != "chaos.start") return error("unknown command '" + cmd + "'");
  if (st.plan) return error("the chaos monkey already runs here (seed " +
                            std::to_string(st.plan->settings().seed) + "): chaos stop first");
  ChaosSettings s;
  s.seed = request.value("seed", uint64_t{1});
  s.rate_per_minute = request.value("rate", 6.0);
  if (!(s.rate_per_minute > 0 && s.rate_per_minute <= 600))
    return error("--rate is faults per minute, more than 0 and at most 600");
  std::string why;
  auto kinds = parse_fault_kinds(request.value("faults", std::string("all")), why);
  if (!kinds) return error(why);
  s.kinds = *kinds;
  for (FaultKind k : s.kinds)
    if (kills_process(k) && !st.setup.supervised)
      return error(std::string(to_string(k)) +
                   " needs sved's configuration process to restart the I/O process; this "
                   "node runs --single-process");
  st.started_ms = wall_ms();
  st.by_kind.clear();
  st.skipped = 0;
  ::unlink(log_path(self).c_str());
  begin(self, s, 0, 0);
  save(self);
  spdlog::warn("chaos: started with seed {}, {} faults a minute, kinds {}", s.seed,
               s.rate_per_minute, settings_json(s)["faults"].dump());
  return json{{"ok", true}, {"result", report(self)}}.dump();
}

// A monkey that was running when this process ended goes on.
void resume(Self* self) {
  std::ifstream in(state_path(self));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  ChaosSettings s;
  s.seed = j.value("seed", uint64_t{1});
  s.rate_per_minute = j.value("rate_per_minute", 6.0);
  for (const auto& name : j.value("faults", json::array()))
    if (auto k = parse_fault_kind(name.get<std::string>())) s.kinds.push_back(*k);
  if (s.kinds.empty()) return;
  auto& st = self->state;
  st.started_ms = j.value("started_ms", uint64_t{0});
  st.by_kind = j.value("by_kind", std::map<std::string, uint64_t>{});
  st.skipped = j.value("skipped", uint64_t{0});
  begin(self, s, j.value("done", uint64_t{0}), kResumeGraceMs);
  spdlog::warn("chaos: resumed after fault {} (seed {})", st.done, s.seed);
}

caf::behavior chaos_actor(Self* self, ChaosActorSetup setup) {
  self->state.setup = std::move(setup);
  self->state.probe = {"chaos", "chaos monkey", -1};
  resume(self);
  self->send(self, tick_atom::value);
  return guarded_behavior(self, &self->state.probe.name,
      [=](tick_atom) {
        auto& st = self->state;
        if (st.plan && monotonic_ms() >= st.due_ms) fire(self);
        self->delayed_send(self, kTick, tick_atom::value);
      },
      [=](admin_atom, const std::string& line) {
        note(self, self->state.probe);
        try {
          return handle(self, line);
        } catch (const std::exception& e) {  // a malformed request: not fatal to the monkey
          return error(std::string("bad request: ") + e.what());
        }
      },
      [=](inspect_atom) {
        return self->state.probe.answer(self->mailbox().size(), report(self));
      },
      [=](trace_atom, uint32_t n) { self->state.probe.start_trace(n); },
      [=](cluster_atom, caf::actor& cluster) { self->state.cluster = std::move(cluster); }
  );
}

}  // namespace

caf::actor spawn_chaos_actor(caf::actor_system& sys, ChaosActorSetup setup) {
  return sys.spawn<caf::detached>(chaos_actor, std::move(setup));
}

}  // namespace sve

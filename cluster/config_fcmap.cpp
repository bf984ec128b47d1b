// Point-in-time copy mappings (docs/flashcopy.md): the admin commands and
// the steps the node that executes a source commits as the copy goes on.
#include <spdlog/spdlog.h>

#include "cluster/config_args.hpp"
#include "cluster/config_service.hpp"
#include "model/fc_edits.hpp"

namespace sve {

using nlohmann::json;
using namespace config_args;

namespace {

std::string vdisk_name(const ClusterModel& model, uint32_t id) {
  const VdiskConfig* v = model.find_vdisk(id);
  return v ? v->name : "?";
}

uint64_t bitmap_bytes(const ClusterModel& model, uint32_t id) {
  const VdiskConfig* v = id ? model.find_vdisk(id) : nullptr;
  return v ? v->size_bytes : 0;
}

std::string group_name(const ClusterModel& model, uint32_t id) {
  for (const auto& g : model.fcgroups)
    if (g.id == id) return g.name;
  return "?";
}

}  // namespace

json ConfigService::describe_fcmap(const FcMapConfig& f) const {
  json dependents = json::array();
  for (const FcMapConfig* d : fcmap_dependents(config_, f)) dependents.push_back(d->name);
  return {{"name", f.name},
          {"id", f.id},
          {"source", vdisk_name(config_, f.source)},
          {"target", vdisk_name(config_, f.target)},
          {"state", to_string(f.state)},
          {"copy_rate", f.copy_rate},
          {"copy_rate_bytes", copy_rate_bytes(f.copy_rate)},
          {"clean_rate", f.clean_rate},
          {"grain_size", f.grain_bytes},
          {"autodelete", f.autodelete},
          {"starts", f.start_seq},
          {"incremental", f.incremental},
          {"consistgrp", f.group ? group_name(config_, f.group) : ""},
          {"bitmap_bytes", bitmap_bytes(config_, f.bitmap)},
          {"dependent_fcmaps", dependents},  // reading through its target
          {"why", f.why}};
}

Result<json> ConfigService::fcmap_create(const json& args) {
  NewFcMap want;
  if (args.contains("name")) {
    auto name = get_name(args, "name");
    if (!name) return name.error();
    want.name = name.value();
  }
  auto source = get_name(args, "source");
  if (!source) return source.error();
  auto target = get_name(args, "target");
  if (!target) return target.error();
  want.source = source.value();
  want.target = target.value();
  if (args.contains("copy_rate")) want.copy_rate = args["copy_rate"].get<uint32_t>();
  if (args.contains("clean_rate")) want.clean_rate = args["clean_rate"].get<uint32_t>();
  if (args.contains("grain")) {
    auto grain = get_size(args, "grain");
    if (!grain) return grain.error();
    if (grain.value() != 64 * 1024 && grain.value() != 256 * 1024)
      return bad("grain must be 64K or 256K");
    want.grain_bytes = static_cast<uint32_t>(grain.value());
  }
  if (args.contains("autodelete")) want.autodelete = args["autodelete"].get<bool>();
  if (args.contains("incremental")) want.incremental = args["incremental"].get<bool>();
  if (args.contains("consistgrp")) {
    auto group = get_name(args, "consistgrp");
    if (!group) return group.error();
    want.group = group.value();
  }
  FcMapConfig made;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    auto f = create_fcmap(next, want, online());
    if (!f) return f.error();
    made = f.value();
    return ok_status();
  });
  if (!st) return st.error();
  return describe_fcmap(made);
}

Result<json> ConfigService::fcmap_list() {
  json out = json::array();
  for (const auto& f : config_.fcmaps) out.push_back(describe_fcmap(f));
  return out;
}

Result<json> ConfigService::fcmap_show(const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  for (const auto& f : config_.fcmaps)
    if (f.name == name.value()) return describe_fcmap(f);
  return bad("no fcmap '" + name.value() + "'");
}

// prepare, start, stop, delete, set: one edit each.
Result<json> ConfigService::fcmap_change(const std::string& cmd, const json& args) {
  auto name = get_name(args, "name");
  if (!name) return name.error();
  std::optional<FcMapConfig> after;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    Result<FcMapConfig> r = make_error("unknown command", EINVAL);
    if (cmd == "fcmap.prepare") r = prepare_fcmap(next, name.value());
    else if (cmd == "fcmap.start") r = start_fcmap(next, name.value());
    else if (cmd == "fcmap.stop") r = stop_fcmap(next, name.value(), args.value("force", false));
    else if (cmd == "fcmap.set") {
      FcMapChange change;
      if (args.contains("copy_rate")) change.copy_rate = args["copy_rate"].get<uint32_t>();
      if (args.contains("clean_rate")) change.clean_rate = args["clean_rate"].get<uint32_t>();
      if (args.contains("autodelete")) change.autodelete = args["autodelete"].get<bool>();
      if (args.contains("consistgrp")) {
        auto group = get_name(args, "consistgrp");
        if (!group) return group.error();
        change.group = group.value();
      }
      if (args.value("no_consistgrp", false)) {
        if (change.group) return bad("--consistgrp or --no-consistgrp, not both");
        change.group = std::string();
      }
      if (!change.copy_rate && !change.clean_rate && !change.autodelete && !change.group)
        return bad("say what to set: --copyrate N, --cleanrate N, --autodelete/--no-autodelete, "
                   "--consistgrp G or --no-consistgrp");
      r = set_fcmap(next, name.value(), change);
    } else if (cmd == "fcmap.delete") {
      after.reset();
      return delete_fcmap(next, name.value(), args.value("force", false));
    }
    if (!r) return r.error();
    after = r.value();
    return ok_status();
  });
  if (!st) return st.error();
  if (!after) return json{{"name", name.value()}, {"deleted", true}};
  spdlog::info("fcmap {}: {}", after->name, to_string(after->state));
  return describe_fcmap(*after);
}

json ConfigService::describe_fcgroup(const FcGroupConfig& g) const {
  json maps = json::array();
  for (const auto& f : config_.fcmaps)
    if (f.group == g.id) maps.push_back(f.name);
  return {{"name", g.name}, {"id", g.id}, {"state", fcgroup_state(config_, g.id)},
          {"fcmaps", maps}};
}

// fcconsistgrp.create|list|show|prepare|start|stop|delete.
Result<json> ConfigService::fcgroup_command(const std::string& cmd, const json& args) {
  if (cmd == "fcconsistgrp.list") {
    json out = json::array();
    for (const auto& g : config_.fcgroups) out.push_back(describe_fcgroup(g));
    return out;
  }
  std::string name;
  if (args.contains("name") || cmd != "fcconsistgrp.create") {
    auto n = get_name(args, "name");
    if (!n) return n.error();
    name = n.value();
  }
  if (cmd == "fcconsistgrp.show") {
    for (const auto& g : config_.fcgroups)
      if (g.name == name) return describe_fcgroup(g);
    return bad("no consistency group '" + name + "'");
  }
  bool deleted = false;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    if (cmd == "fcconsistgrp.create") {
      auto g = create_fcgroup(next, name);
      if (!g) return g.error();
      name = g.value().name;
      return ok_status();
    }
    if (cmd == "fcconsistgrp.prepare") return prepare_fcgroup(next, name);
    if (cmd == "fcconsistgrp.start") return start_fcgroup(next, name);
    if (cmd == "fcconsistgrp.stop") return stop_fcgroup(next, name, args.value("force", false));
    if (cmd == "fcconsistgrp.delete") {
      deleted = true;
      return delete_fcgroup(next, name, args.value("force", false));
    }
    return bad("unknown command '" + cmd + "'");
  });
  if (!st) return st.error();
  if (deleted) return json{{"name", name}, {"deleted", true}};
  for (const auto& g : config_.fcgroups)
    if (g.name == name) {
      json out = describe_fcgroup(g);
      spdlog::info("fcconsistgrp {}: {}", name, out["state"].get<std::string>());
      return out;
    }
  return bad("no consistency group '" + name + "'");
}

Result<bool> ConfigService::fcmap_step(FcStep step, uint32_t id, uint64_t start_seq,
                                       uint32_t node, const std::string& why) {
  bool done = false;
  std::string name;
  for (const auto& f : config_.fcmaps)
    if (f.id == id) name = f.name;
  auto st = commit_change([&](ClusterModel& next) -> Status {
    Result<bool> r = false;
    switch (step) {
      case FcStep::prepared: {
        auto p = fcmap_prepared(next, id);
        r = bool(p);
        break;
      }
      case FcStep::started: r = fcmap_started(next, id, start_seq, node); break;
      case FcStep::copied: r = fcmap_copied(next, id, start_seq); break;
      case FcStep::lost: r = suspend_fcmap(next, id, start_seq, why); break;
      case FcStep::cleaned: r = fcmap_cleaned(next, id, start_seq); break;
    }
    if (!r) return r.error();
    done = r.value();
    // Nothing to commit (a step already taken, or of a start that is over):
    // no cluster event for it.
    return done ? ok_status() : make_error("unchanged", EALREADY);
  });
  if (!st && st.error().code == EALREADY) return false;
  if (!st) return st.error();
  if (done) {
    switch (step) {
      case FcStep::prepared: spdlog::info("fcmap {}: prepared", name); break;
      case FcStep::started: {
        const FcMapConfig* f = nullptr;
        for (const auto& c : config_.fcmaps)
          if (c.id == id) f = &c;
        if (f && f->state == FcState::starting)
          spdlog::info("fcmap {}: drained; its consistency group waits for its others", name);
        else if (f && f->group)
          spdlog::info("event: fcconsistgrp {} started (point in time of each mapping)",
                       group_name(config_, f->group));
        else
          spdlog::info("event: fcmap {} started (point in time {})", name, start_seq);
        break;
      }
      case FcStep::copied: spdlog::info("event: fcmap {} copied", name); break;
      case FcStep::lost: spdlog::warn("event: fcmap {} suspended: {}", name, why); break;
      case FcStep::cleaned: spdlog::info("event: fcmap {} stopped (cleaned)", name); break;
    }
  }
  return done;
}

}  // namespace sve

// Point-in-time copy mappings in the model (model/fc_edits.hpp).
#include "model/fc_edits.hpp"

#include <algorithm>
#include <cerrno>
#include <functional>
#include <set>

#include "model/edits.hpp"
#include "model/extent_allocator.hpp"
#include "model/fc_bitmap_geometry.hpp"
#include "util/size.hpp"

namespace sve {
namespace {

Error bad(std::string message) { return make_error(std::move(message), EINVAL); }
Error busy(const FcMapConfig& f, const std::string& wanted) {
  return make_error("fcmap '" + f.name + "' is " + to_string(f.state) + ": " + wanted, EBUSY);
}

FcMapConfig* find_id(ClusterModel& model, uint32_t id) {
  for (auto& f : model.fcmaps)
    if (f.id == id) return &f;
  return nullptr;
}

// A mapping goes with its bitmap's vdisk (its extents back to the pool).
void erase(ClusterModel& model, const FcMapConfig* f) {
  uint32_t bitmap = f->bitmap;
  model.fcmaps.erase(model.fcmaps.begin() + (f - model.fcmaps.data()));
  if (bitmap)
    std::erase_if(model.vdisks, [&](const VdiskConfig& v) { return v.id == bitmap; });
}

std::string group_name(const ClusterModel& model, uint32_t group) {
  for (const auto& g : model.fcgroups)
    if (g.id == group) return g.name;
  return std::to_string(group);
}

// A mapping in a group moves only with it.
Status not_grouped(const ClusterModel& model, const FcMapConfig& f, const char* verb) {
  if (!f.group) return ok_status();
  return bad("fcmap '" + f.name + "' is in consistency group '" + group_name(model, f.group) +
             "': use fcconsistgrp " + verb + " " + group_name(model, f.group));
}

std::string vdisk_name(const ClusterModel& model, uint32_t id) {
  const VdiskConfig* v = model.find_vdisk(id);
  return v ? v->name : std::to_string(id);
}

// Cascades and restores: a mapping may share its vdisks with mappings that
// are not idle (a snapshot of a snapshot still copying, a restore from one),
// as long as its source is online (not the target of a mapping stopped,
// stopping or suspended) and one core executes them all: it takes their
// home. Mappings with different homes are not joined.
Status place_with_neighbours(ClusterModel& model, FcMapConfig& f) {
  uint32_t home = 0;
  const FcMapConfig* home_of = nullptr;
  for (const auto& x : model.fcmaps) {
    if (x.id == f.id) continue;
    bool shares = x.source == f.source || x.source == f.target || x.target == f.source ||
                  x.target == f.target;
    if (!shares) continue;
    if (x.target == f.source && (x.state == FcState::stopping || x.state == FcState::stopped ||
                                 x.state == FcState::suspended))
      return make_error("fcmap '" + f.name + "' cannot be prepared now: its source '" +
                            vdisk_name(model, f.source) + "' is the target of fcmap '" + x.name +
                            "', which is " + to_string(x.state) +
                            " (the source is offline): prepare that mapping again, or delete it",
                        EBUSY);
    if (x.state == FcState::idle_or_copied || x.state == FcState::stopped ||
        x.state == FcState::suspended)
      continue;  // (no core keeps anything of it)
    uint32_t h = x.home ? x.home : x.source;
    if (home && h != home)
      return make_error("fcmap '" + f.name + "' cannot be prepared now: fcmap '" + home_of->name +
                            "' and fcmap '" + x.name +
                            "' are executed apart and it would join them: wait until one of them "
                            "is idle",
                        EBUSY);
    home = h;
    home_of = &x;
  }
  // Its own history moves with its home only by way of the back end, and
  // two cores would hold it while the view reaches them: not kept.
  uint32_t before = f.home ? f.home : f.source;
  f.home = home ? home : f.source;
  if (f.incremental && f.home != before) f.history_lost = true;
  // An incremental mapping not executing keeps, where its writes are run
  // (its home's core), which grains changed since its last start: f writes
  // its source (a restore, a cascade's copies), or runs its vdisks' writes
  // on another core while f executes: that history is not kept.
  for (auto& x : model.fcmaps) {
    if (x.id == f.id || !x.incremental || x.executing()) continue;
    bool writes_source = x.source == f.target;
    bool shares = x.source == f.source || x.source == f.target || x.target == f.source ||
                  x.target == f.target;
    if (writes_source || (shares && (x.home ? x.home : x.source) != f.home))
      x.history_lost = true;
  }
  return ok_status();
}

Status prepare_one(ClusterModel& model, FcMapConfig& f) {
  if (f.state != FcState::idle_or_copied && f.state != FcState::stopped &&
      f.state != FcState::suspended)
    return busy(f, "only an idle, stopped or suspended mapping is prepared");
  if (auto st = place_with_neighbours(model, f); !st) return st;
  const VdiskConfig* source = model.find_vdisk(f.source);
  const VdiskConfig* target = model.find_vdisk(f.target);
  if (!source || !target) return bad("fcmap '" + f.name + "' lost a vdisk");
  if (source->handover_from || target->handover_from)
    return make_error("a vdisk of fcmap '" + f.name + "' is being handed over: try again", EBUSY);
  f.state = FcState::preparing;
  f.why.clear();
  return ok_status();
}

Status start_one(FcMapConfig& f) {
  if (f.state != FcState::prepared)
    return busy(f, f.state == FcState::preparing ? "wait until it is prepared"
                                                 : "prepare it first");
  f.state = FcState::starting;
  f.start_seq += 1;
  f.drained = false;
  f.why.clear();
  return ok_status();
}

// An incremental mapping that stops executing (copied, stopped) leaves a
// history only where its facility keeps it from then on, which it does
// not while another mapping writes its source below it (a restore, a
// cascade's copies: any not idle whose target it is) or executes one of
// its vdisks from another home (flashcopy/flashcopy_facility.cpp,
// history_here). The writes of that time would not be noted: the history
// is lost, and the next start copies every grain. (Its prepare marks the
// mappings this applies to that are not executing.)
void keep_history_if_noted(const ClusterModel& model, FcMapConfig& f) {
  if (!f.incremental || f.executing()) return;
  uint32_t home = f.home ? f.home : f.source;
  for (const auto& x : model.fcmaps) {
    if (x.id == f.id) continue;
    bool writes_source = x.target == f.source && x.state != FcState::idle_or_copied;
    bool shares = x.source == f.source || x.source == f.target || x.target == f.source ||
                  x.target == f.target;
    if (writes_source || (shares && x.executing() && (x.home ? x.home : x.source) != home))
      f.history_lost = true;
  }
}

// `f` leaves copying (suspended, or stopped with --force) without giving
// the mappings that read through its target what they read: they go to
// `state` with it, and so on down the chain.
void take_dependents_along(ClusterModel& model, const FcMapConfig& f, FcState state,
                           const char* how) {
  std::vector<uint32_t> left{f.id};
  while (!left.empty()) {
    FcMapConfig* gone = find_id(model, left.back());
    left.pop_back();
    for (const FcMapConfig* x : fcmap_dependents(model, *gone)) {
      FcMapConfig* d = find_id(model, x->id);
      d->state = state;
      d->drained = false;
      d->why = "it read through fcmap '" + gone->name + "', which was " + how;
      keep_history_if_noted(model, *d);
      left.push_back(d->id);
    }
  }
}

// A copying mapping that later ones read through stops by way of
// `stopping`: the grains they still need are copied to their targets first
// (fcmap_cleaned); with `force` (SVC's stopfcmap -force) it stops at once
// and they stop with it. A mapping about to start from its target waits.
Status stop_one(ClusterModel& model, FcMapConfig& f, bool force) {
  if (f.state == FcState::copying || f.state == FcState::stopping) {
    for (const auto& x : model.fcmaps)
      if (x.source == f.target && (x.state == FcState::preparing ||
                                   x.state == FcState::prepared || x.state == FcState::starting))
        return make_error("fcmap '" + f.name + "' cannot stop now: fcmap '" + x.name +
                              "', whose source is its target, is " + to_string(x.state) +
                              ": start or stop that one first",
                          EBUSY);
  }
  f.drained = false;
  if (force && f.executing()) {
    f.state = FcState::stopped;
    f.why = "stopped with --force before every grain was copied";
    keep_history_if_noted(model, f);
    take_dependents_along(model, f, FcState::stopped, "stopped with --force");
    return ok_status();
  }
  switch (f.state) {
    case FcState::preparing:
    case FcState::prepared:
    case FcState::starting: f.state = FcState::idle_or_copied; break;
    case FcState::copying:
      if (!fcmap_dependents(model, f).empty()) {
        f.state = FcState::stopping;
        f.why = "stopping: copying the grains later mappings of its target still need";
        break;
      }
      f.state = FcState::stopped;
      f.why = "stopped before every grain was copied";
      keep_history_if_noted(model, f);
      break;
    case FcState::idle_or_copied:
    case FcState::stopping:
    case FcState::stopped:
    case FcState::suspended: break;
  }
  return ok_status();
}

// A mapping may join or leave a group only while neither it nor the
// group's other mappings are on their way to a point in time.
bool settled(FcState s) {
  return s == FcState::idle_or_copied || s == FcState::stopped || s == FcState::suspended;
}

}  // namespace

// The mappings that read through `f`'s target: copying (or stopping) ones
// whose source it is and that became copying after it (docs/flashcopy.md).
std::vector<const FcMapConfig*> fcmap_dependents(const ClusterModel& model,
                                                const FcMapConfig& f) {
  std::vector<const FcMapConfig*> out;
  for (const auto& x : model.fcmaps)
    if (x.id != f.id && x.source == f.target && x.executing() &&
        (f.order < x.order || (f.order == x.order && f.id < x.id)))
      out.push_back(&x);
  return out;
}

uint64_t copy_rate_bytes(uint32_t copy_rate) {
  if (copy_rate == 0) return 0;
  uint32_t band = (std::min(copy_rate, kMaxCopyRate) - 1) / 10;  // 0..14
  return (128ull * 1024) << band;
}

Result<FcMapConfig> create_fcmap(ClusterModel& model, const NewFcMap& args,
                                 const std::function<bool(uint32_t)>& online) {
  VdiskConfig* source = model.find_vdisk(args.source);
  if (!source) return bad("no vdisk '" + args.source + "'");
  VdiskConfig* target = model.find_vdisk(args.target);
  if (!target) return bad("no vdisk '" + args.target + "'");
  if (source->id == target->id) return bad("a vdisk cannot be its own target");
  if (source->size_bytes != target->size_bytes)
    return bad("source '" + source->name + "' is " + format_size(source->size_bytes) +
               " and target '" + target->name + "' " + format_size(target->size_bytes) +
               ": they must be the same size");
  if (args.grain_bytes != 64 * 1024 && args.grain_bytes != 256 * 1024)
    return bad("grain must be 64K or 256K");
  if (args.copy_rate > kMaxCopyRate)
    return bad("copy rate must be 0.." + std::to_string(kMaxCopyRate));
  if (args.clean_rate > kMaxCopyRate)
    return bad("clean rate must be 0.." + std::to_string(kMaxCopyRate));
  // One node executes both (it keeps which grains are copied): the same
  // I/O group, and the target moves to the source's preferred node (a
  // handover, as `vdisk move`, if it had another).
  if (source->iogrp_id != target->iogrp_id)
    return bad("source and target must be in the same I/O group (vdisk move TARGET --iogrp G)");
  uint32_t from_source = 0;
  for (const auto& f : model.fcmaps) {
    if (f.target == target->id)
      return bad("vdisk '" + target->name + "' is already the target of fcmap '" + f.name + "'");
    from_source += f.source == source->id;
  }
  if (from_source >= kMaxTargetsPerSource)
    return bad("vdisk '" + source->name + "' has " + std::to_string(from_source) +
               " targets already, the most it may have");
  if (source->preferred_node != target->preferred_node) {
    const IoGroupConfig* g = model.find_iogrp(source->iogrp_id);
    if (!g) return bad("source '" + source->name + "' is in no I/O group");
    uint32_t node = source->preferred_node;
    std::string target_name = target->name;
    auto moved = move_vdisk(model, target_name, Placement{g->name, node});
    if (!moved) return moved.error();
  }
  FcMapConfig f;
  f.id = model.next_id++;
  f.name = args.name.empty() ? "fcmap" + std::to_string(f.id) : args.name;
  if (model.find_fcmap(f.name)) return bad("fcmap '" + f.name + "' exists");
  f.source = source->id;
  f.target = target->id;
  f.copy_rate = args.copy_rate;
  f.clean_rate = args.clean_rate;
  f.home = source->id;
  f.grain_bytes = args.grain_bytes;
  f.autodelete = args.autodelete;
  f.incremental = args.incremental;
  if (!args.group.empty()) {
    const FcGroupConfig* g = model.find_fcgroup(args.group);
    if (!g) return bad("no consistency group '" + args.group + "'");
    if (std::string why = fcgroup_blocks_join(model, f, g); !why.empty()) return bad(why);
    f.group = g->id;
  }
  // Its bitmap: a hidden vdisk beside the source, executed by the same node.
  PoolConfig* pool = model.find_pool(source->pool_id);
  if (!pool) return bad("source '" + source->name + "' is in no pool");
  for (uint32_t id : pool->mdisks)
    if (!online(id)) return bad("pool '" + pool->name + "' has an offline mdisk");
  uint64_t bytes =
      fc_bitmap_vdisk_bytes(fc_grains(source->size_bytes, f.grain_bytes), f.incremental);
  uint32_t count = static_cast<uint32_t>((bytes + pool->extent_bytes - 1) / pool->extent_bytes);
  auto extents = PoolUsage(model, *pool).allocate(count, ExtentPolicy::striped, pool->stripe_cursor);
  if (!extents)
    return make_error("pool '" + pool->name + "' has no room for the mapping's bitmap (" +
                          format_size(bytes) + "): " + extents.error().message,
                      ENOSPC);
  VdiskConfig b;
  b.id = model.next_id++;
  b.name = f.name + ":bitmap";  // (no name an admin may give has a ':')
  b.pool_id = pool->id;
  b.size_bytes = bytes;
  b.extents = std::move(extents.value());
  b.iogrp_id = source->iogrp_id;
  b.preferred_node = source->preferred_node;
  b.bitmap_of = f.id;
  f.bitmap = b.id;
  model.vdisks.push_back(b);
  model.fcmaps.push_back(f);
  return f;
}

Status delete_fcmap(ClusterModel& model, const std::string& name, bool force) {
  FcMapConfig* f = model.find_fcmap(name);
  if (!f) return bad("no fcmap '" + name + "'");
  if (f->executing()) {
    auto later = fcmap_dependents(model, *f);
    if (!later.empty())
      return busy(*f, "fcmap '" + later.front()->name + "' reads through its target: " +
                          (f->state == FcState::stopping
                               ? std::string("delete it once stopped (it is copying them what "
                                             "they read first)")
                               : std::string("stop it first (what they read is copied to them), "
                                             "or let it copy to the end")));
  }
  if ((f->executing() || f->state == FcState::starting) && !force)
    return busy(*f, "stop it first, or delete it with --force (the target is left part copied)");
  erase(model, f);
  return ok_status();
}


Result<FcMapConfig> prepare_fcmap(ClusterModel& model, const std::string& name) {
  FcMapConfig* f = model.find_fcmap(name);
  if (!f) return bad("no fcmap '" + name + "'");
  if (auto st = not_grouped(model, *f, "prepare"); !st) return st.error();
  if (auto st = prepare_one(model, *f); !st) return st.error();
  return *f;
}

Result<FcMapConfig> fcmap_prepared(ClusterModel& model, uint32_t id) {
  FcMapConfig* f = find_id(model, id);
  if (!f) return make_error("fcmap deleted", ENOENT);
  if (f->state != FcState::preparing) return busy(*f, "not preparing");
  f->state = FcState::prepared;
  return *f;
}

Result<FcMapConfig> start_fcmap(ClusterModel& model, const std::string& name) {
  FcMapConfig* f = model.find_fcmap(name);
  if (!f) return bad("no fcmap '" + name + "'");
  if (auto st = not_grouped(model, *f, "start"); !st) return st.error();
  if (auto st = start_one(*f); !st) return st.error();
  return *f;
}

Result<bool> fcmap_started(ClusterModel& model, uint32_t id, uint64_t start_seq, uint32_t node) {
  FcMapConfig* f = find_id(model, id);
  if (!f || f->state != FcState::starting || f->start_seq != start_seq) return false;
  f->started_by = node;
  // Later than every mapping that is copying now (a later one reads through
  // an earlier one; a group's share one order).
  uint64_t order = 1;
  for (const auto& other : model.fcmaps) order = std::max(order, other.order + 1);
  if (!f->group) {
    f->state = FcState::copying;
    f->order = order;
    f->history_lost = false;  // (this start copies what the lost history would have spared)
    return true;
  }
  if (f->drained) return false;
  f->drained = true;
  // The group's instant: only once every mapping of it holds its writes.
  for (const auto& other : model.fcmaps)
    if (other.group == f->group && other.state == FcState::starting && !other.drained) return true;
  for (auto& other : model.fcmaps) {
    if (other.group != f->group || other.state != FcState::starting) continue;
    other.state = FcState::copying;
    other.order = order;
    other.history_lost = false;
    other.drained = false;
  }
  return true;
}

Result<FcMapConfig> stop_fcmap(ClusterModel& model, const std::string& name, bool force) {
  FcMapConfig* f = model.find_fcmap(name);
  if (!f) return bad("no fcmap '" + name + "'");
  if (auto st = not_grouped(model, *f, "stop"); !st) return st.error();
  if (auto st = stop_one(model, *f, force); !st) return st.error();
  return *f;
}

Result<bool> fcmap_copied(ClusterModel& model, uint32_t id, uint64_t start_seq) {
  FcMapConfig* f = find_id(model, id);
  if (!f || !f->executing() || f->start_seq != start_seq) return false;
  if (f->autodelete) {
    erase(model, f);
    return true;
  }
  f->state = FcState::idle_or_copied;
  keep_history_if_noted(model, *f);
  return true;
}

Result<bool> suspend_fcmap(ClusterModel& model, uint32_t id, uint64_t start_seq,
                           const std::string& why) {
  FcMapConfig* f = find_id(model, id);
  if (!f || !f->executing() || f->start_seq != start_seq) return false;
  f->state = FcState::suspended;
  f->why = why;
  // Those that read through its target do not know what they read any more.
  take_dependents_along(model, *f, FcState::suspended, "suspended");
  return true;
}

Result<bool> fcmap_cleaned(ClusterModel& model, uint32_t id, uint64_t start_seq) {
  FcMapConfig* f = find_id(model, id);
  if (!f || f->state != FcState::stopping || f->start_seq != start_seq) return false;
  f->state = FcState::stopped;
  f->why = "stopped before every grain was copied";
  keep_history_if_noted(model, *f);
  return true;
}

Result<FcMapConfig> set_fcmap(ClusterModel& model, const std::string& name,
                              const FcMapChange& change) {
  FcMapConfig* f = model.find_fcmap(name);
  if (!f) return bad("no fcmap '" + name + "'");
  if (change.copy_rate && *change.copy_rate > kMaxCopyRate)
    return bad("copy rate must be 0.." + std::to_string(kMaxCopyRate));
  if (change.clean_rate && *change.clean_rate > kMaxCopyRate)
    return bad("clean rate must be 0.." + std::to_string(kMaxCopyRate));
  if (change.group) {
    const FcGroupConfig* g = nullptr;
    if (!change.group->empty()) {
      g = model.find_fcgroup(*change.group);
      if (!g) return bad("no consistency group '" + *change.group + "'");
    }
    if ((g ? g->id : 0) != f->group) {
      if (std::string why = fcgroup_blocks_join(model, *f, g); !why.empty()) return bad(why);
      f->group = g ? g->id : 0;
    }
  }
  if (change.copy_rate) f->copy_rate = *change.copy_rate;
  if (change.clean_rate) f->clean_rate = *change.clean_rate;
  if (change.autodelete) f->autodelete = *change.autodelete;
  return *f;
}

std::string fcmap_blocks_delete(const ClusterModel& model, uint32_t vdisk) {
  for (const auto& f : model.fcmaps)
    if (f.source == vdisk || f.target == vdisk)
      return "it is in fcmap '" + f.name + "': delete the mapping first";
  return {};
}

std::string fcmap_blocks_change(const ClusterModel& model, uint32_t vdisk) {
  for (const auto& f : model.fcmaps)
    if ((f.source == vdisk || f.target == vdisk) && f.busy())
      return std::string("it is in fcmap '") + f.name + "', which is " + to_string(f.state);
  return {};
}

// ---- consistency groups -------------------------------------------------------------

Result<FcGroupConfig> create_fcgroup(ClusterModel& model, const std::string& name) {
  FcGroupConfig g;
  g.id = model.next_id++;
  g.name = name.empty() ? "fccstgrp" + std::to_string(g.id) : name;  // SVC's default names
  if (model.find_fcgroup(g.name)) return bad("consistency group '" + g.name + "' exists");
  model.fcgroups.push_back(g);
  return g;
}

Status delete_fcgroup(ClusterModel& model, const std::string& name, bool force) {
  FcGroupConfig* g = model.find_fcgroup(name);
  if (!g) return bad("no consistency group '" + name + "'");
  size_t maps = 0;
  for (const auto& f : model.fcmaps) maps += f.group == g->id;
  if (maps && !force)
    return make_error("consistency group '" + name + "' has " + std::to_string(maps) +
                          " mappings: delete them, or delete the group with --force (they stay, "
                          "standalone)",
                      EBUSY);
  for (auto& f : model.fcmaps)
    if (f.group == g->id) {
      f.group = 0;
      f.drained = false;
    }
  model.fcgroups.erase(model.fcgroups.begin() + (g - model.fcgroups.data()));
  return ok_status();
}

namespace {

// Each of the group's mappings changed by `one`, all or none, one after
// another (a mapping prepared in a group takes the home of one prepared
// before it in the same group).
Status each_of_group(ClusterModel& model, const std::string& name,
                     const std::function<Status(ClusterModel&, FcMapConfig&)>& one) {
  const FcGroupConfig* g = model.find_fcgroup(name);
  if (!g) return bad("no consistency group '" + name + "'");
  ClusterModel next = model;  // changed only if every one may be
  bool any = false;
  for (auto& f : next.fcmaps) {
    if (f.group != g->id) continue;
    any = true;
    if (auto st = one(next, f); !st)
      return make_error("consistency group '" + name + "': " + st.error().message, st.error().code);
  }
  if (!any) return bad("consistency group '" + name + "' has no mappings");
  model = std::move(next);
  return ok_status();
}

}  // namespace

Status prepare_fcgroup(ClusterModel& model, const std::string& name) {
  return each_of_group(model, name, prepare_one);
}

Status start_fcgroup(ClusterModel& model, const std::string& name) {
  return each_of_group(model, name, [](ClusterModel&, FcMapConfig& f) { return start_one(f); });
}

Status stop_fcgroup(ClusterModel& model, const std::string& name, bool force) {
  return each_of_group(model, name, [force](ClusterModel& m, FcMapConfig& f) {
    return stop_one(m, f, force);
  });
}

std::string fcgroup_state(const ClusterModel& model, uint32_t group) {
  // The state furthest from idle that one of its mappings is in.
  static constexpr FcState kOrder[] = {FcState::starting,  FcState::preparing,
                                       FcState::stopping,  FcState::suspended,
                                       FcState::stopped,   FcState::copying,
                                       FcState::prepared};
  bool any = false;
  std::set<FcState> seen;
  for (const auto& f : model.fcmaps)
    if (f.group == group) {
      any = true;
      seen.insert(f.state);
    }
  if (!any) return "empty";
  for (FcState s : kOrder)
    if (seen.count(s)) return to_string(s);
  return to_string(FcState::idle_or_copied);
}

std::string fcgroup_blocks_join(const ClusterModel& model, const FcMapConfig& map,
                                const FcGroupConfig* group) {
  if (!settled(map.state))
    return "fcmap '" + map.name + "' is " + to_string(map.state) +
           ": it joins or leaves a consistency group only when idle, stopped or suspended";
  if (!group) return {};
  uint32_t maps = 0;
  for (const auto& f : model.fcmaps) {
    if (f.group != group->id || f.id == map.id) continue;
    ++maps;
    if (!settled(f.state))
      return "consistency group '" + group->name + "' is " + fcgroup_state(model, group->id) +
             ": a mapping joins it only when it is idle, stopped or suspended";
  }
  if (maps >= kMaxMapsPerGroup)
    return "consistency group '" + group->name + "' has " + std::to_string(maps) +
           " mappings, the most it may have";
  return {};
}

}  // namespace sve

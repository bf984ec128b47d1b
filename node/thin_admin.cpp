// What the admin API adds from the thin layer: used capacity in `vdisk show`
// and `pool list`, and `vdisk check` / `pool check`.
#include "node/node_impl.hpp"

#include <map>
#include <thread>

#include "admin/admin_schema.hpp"

namespace sve {

namespace {

nlohmann::json check_json(const ThinCheck& c) {
  return {{"clean", c.clean()},
          {"mapped_grains", c.mapped},
          {"mapped_twice", c.mapped_twice},
          {"out_of_range", c.out_of_range},
          {"leaked", c.leaked},
          {"lost", c.lost},
          {"differs_from_disk", c.differs},
          {"torn_slots", c.torn_slots},
          {"summary", c.describe()}};
}

nlohmann::json ok_reply(nlohmann::json result) {
  return {{"ok", true}, {"result", std::move(result)}};
}

}  // namespace

// The figures of the core that holds the vdisk's map on this node; null
// where this node does not hold it (another node executes the vdisk).
nlohmann::json Node::Impl::thin_json(uint32_t vdisk) {
  size_t i = vdisk % cores.size();
  ThinFacility* thin = cores[i].thin_facility.get();
  auto f = ask_core<std::optional<ThinFigures>>(
      i, cores[i].thin, [thin, vdisk] { return thin->figures(vdisk); });
  if (!f || !f->loaded) return nullptr;
  return {{"used_capacity", f->used_bytes},
          {"free_in_real_capacity", f->free_bytes},
          {"metadata_bytes", f->meta_bytes},
          {"warning_crossed", f->warning},
          {"growing", f->growing},
          {"out_of_space", f->out_of_space},
          {"last_check", check_json(f->last_check)}};
}

// vdisk.check / pool.check: each thin vdisk's map is read again from disk
// on the core that holds it, once nothing is in flight, and checked.
std::string Node::Impl::check_thin(const nlohmann::json& request) {
  std::string cmd = admin_command(request);
  std::string name = request.value("name", "");
  std::vector<VdiskConfig> vdisks;
  std::string pool_note;
  {
    std::lock_guard lock(routes_mu);
    if (cmd == "vdisk.check") {
      const VdiskConfig* v = nullptr;
      for (const auto& c : routed_config.vdisks)
        if (c.name == name) v = &c;
      if (!v) return admin_error("no vdisk '" + name + "'");
      if (!v->thin()) return admin_error("vdisk '" + name + "' is not thin: it has no map to check");
      vdisks.push_back(*v);
    } else {
      const PoolConfig* p = nullptr;
      for (const auto& c : routed_config.pools)
        if (c.name == name) p = &c;
      if (!p) return admin_error("no pool '" + name + "'");
      // Extents: each held by one vdisk at most.
      std::map<std::pair<uint32_t, uint32_t>, std::string> holder;
      for (const auto& v : routed_config.vdisks) {
        if (v.pool_id != p->id) continue;
        for (const auto& e : v.extents) {
          auto [it, fresh] = holder.emplace(std::make_pair(e.mdisk_id, e.index), v.name);
          if (!fresh)
            pool_note += "extent " + std::to_string(e.index) + " of mdisk " +
                         std::to_string(e.mdisk_id) + " is held by both '" + it->second +
                         "' and '" + v.name + "'; ";
        }
        if (v.thin()) vdisks.push_back(v);
      }
    }
  }
  nlohmann::json out = nlohmann::json::array();
  bool clean = pool_note.empty();
  for (const VdiskConfig& v : vdisks) {
    size_t i = v.id % cores.size();
    ThinFacility* thin = cores[i].thin_facility.get();
    uint32_t id = v.id;
    auto before = ask_core<std::optional<ThinFigures>>(
        i, cores[i].thin, [thin, id] { return thin->figures(id); });
    int started = ask_core<int>(i, cores[i].thin, [thin, id] { return thin->start_check(id); });
    if (started != 0) {
      out.push_back({{"vdisk", v.name},
                     {"checked", false},
                     {"why", started == ESTALE
                                 ? "another node executes it now: check it there"
                                 : "its map is not held here"}});
      clean = false;
      continue;
    }
    uint64_t checks_before = before ? before->checks : 0;
    bool was_loaded = before && before->loaded;
    // A check waits for the requests in flight, then reads the map: it
    // ends within seconds; the admin thread polls for it.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::optional<ThinFigures> after;
    for (;;) {
      after = ask_core<std::optional<ThinFigures>>(
          i, cores[i].thin, [thin, id] { return thin->figures(id); });
      if (after && after->loaded && (after->checks > checks_before || !was_loaded)) break;
      if (std::chrono::steady_clock::now() > deadline)
        return admin_error("vdisk '" + v.name + "': the check did not finish within 60 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    clean = clean && after->last_check.clean();
    nlohmann::json entry = check_json(after->last_check);
    entry["vdisk"] = v.name;
    entry["checked"] = true;
    entry["used_capacity"] = after->used_bytes;
    out.push_back(std::move(entry));
  }
  if (cmd == "vdisk.check") return ok_reply(out[0]).dump();
  return ok_reply({{"pool", name},
                   {"clean", clean},
                   {"extents", pool_note.empty() ? "each held by one vdisk at most" : pool_note},
                   {"vdisks", out}})
      .dump();
}

// pool.list, with what the thin vdisks this node holds have used.
std::string Node::Impl::list_pools(const std::string& line) {
  std::string reply = call_config(line);
  auto answer = nlohmann::json::parse(reply, nullptr, false);
  if (answer.is_discarded() || !answer.value("ok", false)) return reply;
  std::vector<VdiskConfig> vdisks;
  std::map<uint32_t, uint64_t> extent_bytes;
  {
    std::lock_guard lock(routes_mu);
    vdisks = routed_config.vdisks;
    for (const auto& p : routed_config.pools) extent_bytes[p.id] = p.extent_bytes;
  }
  try {
    for (auto& pool : answer["result"]) {
      uint32_t id = pool.value("id", uint32_t{0});
      uint64_t used = 0;
      bool partial = false;
      for (const auto& v : vdisks) {
        if (v.pool_id != id) continue;
        if (!v.thin()) {
          used += v.extents.size() * extent_bytes[id];
          continue;
        }
        auto t = thin_json(v.id);
        if (t.is_null()) partial = true;
        else used += t["used_capacity"].get<uint64_t>();
      }
      pool["used_capacity"] = used;
      // A thin vdisk another node executes is not counted here.
      if (partial) pool["used_capacity_partial"] = true;
      uint64_t capacity = pool.value("capacity", uint64_t{0});
      pool["used_percent"] = capacity ? used * 100 / capacity : 0;
      uint64_t real = capacity - pool.value("free", uint64_t{0});
      pool["warning_crossed"] = capacity && real * 100 >= capacity * kPoolWarningPct;
    }
  } catch (const std::exception& e) {
    return admin_error(std::string("pool list: ") + e.what());
  }
  return answer.dump();
}

}  // namespace sve

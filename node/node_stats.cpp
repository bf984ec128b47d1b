// The node's figures: the data path per core (node stats) and the cache,
// summed over its partitions or for one vdisk (node show, vdisk show).
#include "node/node_impl.hpp"

#include <chrono>
#include <future>
#include <stdexcept>

#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"

namespace sve {

namespace {

nlohmann::json account_json(const PoolAccount& a) {
  return {{"used", a.used()}, {"reserve", a.reserve()}, {"limit", a.limit()},
          {"high_water", a.stats().high_water}, {"grants", a.stats().grants},
          {"waits", a.stats().waits}};
}

// Runs on the core's own thread: its ring and pools are not shared.
nlohmann::json core_io_json(CoreIo& io) {
  const UringStats& r = io.ring().stats();
  nlohmann::json requests{{"capacity", io.requests().capacity()},
                          {"free", io.requests().free_count()},
                          {"frontend", account_json(io.frontend_requests())}};
  for (const auto& account : io.facility_accounts())
    requests[account->name()] = account_json(*account);
  return {
      {"ring", {{"submitted", r.submitted}, {"completed", r.completed}, {"errors", r.errors},
                {"in_flight", io.ring().in_flight()}, {"fixed_buffer_ops", r.fixed_buffer_ops},
                {"buffered_fallbacks", r.buffered_fallbacks},
                {"inline_completions", r.inline_completions}, {"enters", r.enters}}},
      {"buffers", {{"total_pages", io.buffers().total_pages()},
                   {"free_pages", io.buffers().free_pages()},
                   {"frontend", account_json(io.frontend_buffers())}}},
      {"requests", requests},
      {"waiting", {{"buffers", io.buffers().root().waiting()},
                   {"requests", io.requests().root().waiting()}}},
  };
}

}  // namespace

nlohmann::json Node::io_stats() {
  Impl& m = *impl_;
  nlohmann::json cores = nlohmann::json::array();
  auto sched = reactor_scheduler_stats();
  for (size_t i = 0; i < m.cores.size(); ++i) {
    CoreIo* io = m.cores[i].io;
    nlohmann::json core = m.ask_core(i, m.cores[i].backend, [io] { return core_io_json(*io); });
    core["core"] = i;
    if (i < sched.size())
      core["scheduler"] = {{"local", sched[i].local}, {"cross_core", sched[i].cross_core},
                           {"external", sched[i].external}, {"sleeps", sched[i].sleeps}};
    cores.push_back(std::move(core));
  }
  return {{"cores", cores}, {"nbd_connections", m.nbd ? m.nbd->connections() : 0}};
}

nlohmann::json Node::Impl::ask_core(size_t i, const caf::actor& on,
                                    std::function<nlohmann::json()> fn) {
  // Shared, in case the answer comes too late.
  auto done = std::make_shared<std::promise<nlohmann::json>>();
  auto answer = done->get_future();
  run_on_core(on, [done, fn = std::move(fn)] { done->set_value(fn()); });
  if (answer.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw std::runtime_error("core " + std::to_string(i) + " did not answer within 5 s");
  return answer.get();
}

// The cache of this node (every partition summed), or of one vdisk (its
// partition's share of it).
nlohmann::json Node::Impl::cache_json(std::optional<uint32_t> vdisk) {
  CacheCounts total;
  CacheVdiskStats v;
  nlohmann::json sums = nlohmann::json::object();
  uint64_t vdisk_dirty = 0;
  uint64_t capacity = 0;
  std::string mode, why;
  for (size_t i = 0; i < cores.size(); ++i) {
    CacheFacility* cache = cores[i].cache.get();
    auto part = ask_core(i, cores[i].cache_actor, [cache, vdisk] {
      CacheCounts c = cache->counts();
      const CachePartitionStats& s = cache->stats();
      nlohmann::json j = {{"capacity", cache->capacity_bytes()}, {"clean", c.clean},
                          {"dirty", c.dirty}, {"destaging", c.destaging},
                          {"destaged", s.destaged_bytes}, {"rate", cache->destage_rate()},
                          {"copies", s.copies_held}, {"promoted", s.promoted},
                          {"discarded", s.discarded}, {"waits", s.waits},
                          {"mirrored", s.mirrored}, {"batches", s.mirror_batches},
                          {"retries", s.mirror_retries}};
      if (vdisk) {
        j["mode"] = to_string(cache->mode(*vdisk));
        j["why"] = cache->mode_reason(*vdisk);
        j["vdisk_dirty"] = cache->dirty_blocks(*vdisk);
      }
      CacheVdiskStats all = cache->totals();
      const CacheVdiskStats* io = vdisk ? cache->vdisk_stats(*vdisk) : &all;
      if (io)
        j["vdisk"] = {{"reads", io->reads}, {"read_hits", io->read_hits},
                      {"writes", io->writes}, {"bytes_read", io->bytes_read},
                      {"bytes_hit", io->bytes_hit}, {"bytes_written", io->bytes_written},
                      {"bytes_destaged", io->bytes_destaged},
                      {"destage_rate", io->destage_rate}};
      return j;
    });
    capacity += part["capacity"].get<uint64_t>();
    total.clean += part["clean"].get<uint32_t>();
    total.dirty += part["dirty"].get<uint32_t>();
    total.destaging += part["destaging"].get<uint32_t>();
    for (const char* key : {"destaged", "rate", "copies", "promoted", "discarded", "waits",
                            "mirrored", "batches", "retries"})
      sums[key] = sums.value(key, uint64_t{0}) + part[key].get<uint64_t>();
    if (part.contains("vdisk_dirty"))
      vdisk_dirty += part["vdisk_dirty"].get<uint64_t>();
    if (vdisk && i == *vdisk % cores.size()) {  // the partition that owns it says
      mode = part["mode"];
      why = part["why"];
    }
    if (part.contains("vdisk")) {
      const auto& s = part["vdisk"];
      v.reads += s["reads"].get<uint64_t>();
      v.read_hits += s["read_hits"].get<uint64_t>();
      v.writes += s["writes"].get<uint64_t>();
      v.bytes_read += s["bytes_read"].get<uint64_t>();
      v.bytes_hit += s["bytes_hit"].get<uint64_t>();
      v.bytes_written += s["bytes_written"].get<uint64_t>();
      v.bytes_destaged += s["bytes_destaged"].get<uint64_t>();
      v.destage_rate += s["destage_rate"].get<uint64_t>();
    }
  }
  if (!vdisk) {
    std::lock_guard lock(routes_mu);
    NodeCacheMode m = node_cache_mode(routed_config, policy);
    mode = to_string(m.mode);
    why = m.why;
  }
  uint64_t reads = v.reads, hits = v.read_hits;
  nlohmann::json out = {
      {"mode", mode},
      {"why", why},
      {"size_bytes", capacity},
      {"cached_bytes", uint64_t{total.clean + total.dirty + total.destaging} * 4096},
      {"dirty_bytes", uint64_t{total.dirty + total.destaging} * 4096},
      {"destaged_bytes", sums["destaged"]},
      {"destage_rate", sums["rate"]},  // bytes per second, over the last second
      {"partner_copies_bytes", sums["copies"].get<uint64_t>() * 4096},
      {"blocks_mirrored", sums["mirrored"]},
      {"mirror_messages", sums["batches"]},
      {"mirror_retries", sums["retries"]},
      {"copies_taken_over", sums["promoted"]},
      {"copies_discarded", sums["discarded"]},
      {"waits", sums["waits"]},
  };
  out["reads"] = reads;
  out["read_hits"] = hits;
  out["hit_ratio"] = reads ? static_cast<double>(hits) / static_cast<double>(reads) : 0.0;
  out["writes"] = v.writes;
  out["bytes_read"] = v.bytes_read;
  out["bytes_hit"] = v.bytes_hit;
  out["bytes_written"] = v.bytes_written;
  if (vdisk) {  // this vdisk's share
    out["dirty_bytes"] = vdisk_dirty * 4096;
    out["destaged_bytes"] = v.bytes_destaged;
    out["destage_rate"] = v.destage_rate;
  }
  return out;
}

}  // namespace sve

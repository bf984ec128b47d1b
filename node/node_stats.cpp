// The node's figures: the data path per core (node stats) and the cache,
// summed over its partitions or for one vdisk (node show, vdisk show).
#include "node/node_impl.hpp"

#include <chrono>
#include <future>
#include <stdexcept>

#include "actors/reactor/reactor_scheduler.hpp"
#include "actors/spawn.hpp"
#include "cache/cache_report.hpp"

namespace sve {

namespace {

nlohmann::json account_json(const PoolAccount& a) {
  return {{"used", a.used()}, {"reserve", a.reserve()}, {"limit", a.limit()},
          {"high_water", a.stats().high_water}, {"grants", a.stats().grants},
          {"waits", a.stats().waits}};
}

// Runs on the core's own thread: its ring and pools are not shared.
nlohmann::json core_io_json(CoreIo& io, const BackendFacility& backend) {
  const BackendStats& r = backend.stats();
  nlohmann::json requests{{"capacity", io.requests().capacity()},
                          {"free", io.requests().free_count()},
                          {"frontend", account_json(io.frontend_requests())}};
  for (const auto& account : io.facility_accounts())
    requests[account->name()] = account_json(*account);
  return {
      {"ring", {{"submitted", r.submitted}, {"completed", r.completed}, {"errors", r.errors},
                {"in_flight", backend.in_flight()}, {"fixed_buffer_ops", r.fixed_buffer_ops},
                {"buffered_fallbacks", r.buffered_fallbacks},
                {"inline_completions", r.inline_completions}, {"fenced", r.fenced},
                {"held", r.held},
                {"enters", io.ring().stats().enters}}},
      {"buffers", {{"total_pages", io.buffers().total_pages()},
                   {"free_pages", io.buffers().free_pages()},
                   {"frontend", account_json(io.frontend_buffers())}}},
      {"requests", requests},
      {"waiting", {{"buffers", io.buffers().root().waiting()},
                   {"requests", io.requests().root().waiting()}}},
  };
}

// Payload bytes this core copied, by where to (docs/cache.md, "Copies"),
// on its own thread.
nlohmann::json core_copies_json(const CoreStack& core) {
  nlohmann::json j{{"into_cache", 0}, {"out_of_cache", 0}, {"into_nvram", 0},
                   {"forwarded", 0}};
  if (core.cache) {
    const CachePartitionStats& s = core.cache->stats();
    j["into_cache"] = s.bytes_into_cache;
    j["out_of_cache"] = s.bytes_out_of_cache;
    j["into_nvram"] = s.bytes_into_nvram;
  }
  if (core.forwarder) j["forwarded"] = core.forwarder->stats().bytes_copied;
  return j;
}

}  // namespace

nlohmann::json Node::io_stats() {
  Impl& m = *impl_;
  nlohmann::json cores = nlohmann::json::array();
  // The node's, summed over its cores; "device" is the memory mdisks' own
  // copy (their "DMA"), counted for the whole process.
  nlohmann::json copies{{"device", PayloadCopies::device_bytes.load(std::memory_order_relaxed)}};
  auto sched = reactor_scheduler_stats();
  for (size_t i = 0; i < m.cores.size(); ++i) {
    CoreIo* io = m.cores[i].io;
    const BackendFacility* backend = m.cores[i].backend_facility.get();
    const CoreStack* stack = &m.cores[i];
    nlohmann::json core = m.ask_core<nlohmann::json>(i, m.cores[i].backend, [io, backend, stack] {
      nlohmann::json j = core_io_json(*io, *backend);
      j["payload_copies"] = core_copies_json(*stack);
      return j;
    });
    core["core"] = i;
    for (const auto& [what, bytes] : core["payload_copies"].items())
      copies[what] = copies.value(what, uint64_t{0}) + bytes.get<uint64_t>();
    if (i < sched.size())
      core["scheduler"] = {{"local", sched[i].local}, {"cross_core", sched[i].cross_core},
                           {"external", sched[i].external}, {"sleeps", sched[i].sleeps}};
    cores.push_back(std::move(core));
  }
  // Point-in-time copies, summed over the cores (on each core's thread).
  nlohmann::json flashcopy = nlohmann::json::object();
  for (size_t i = 0; i < m.cores.size(); ++i) {
    const FlashCopyFacility* fc = m.cores[i].flashcopy.get();
    if (!fc) continue;
    auto st = m.ask_core<FlashCopyStats>(i, m.cores[i].cache_actor, [fc] { return fc->stats(); });
    const std::pair<const char*, uint64_t> figures[] = {
        {"grain_copies", st.grain_copies},     {"background_copies", st.background_copies},
        {"clean_copies", st.clean_copies},
        {"redirected_reads", st.redirected_reads}, {"paused", st.paused},
        {"copy_errors", st.copy_errors},       {"bytes_copied", st.bytes_copied},
        {"incremental_kept", st.incremental_kept}, {"bitmap_writes", st.bitmap_writes},
        {"bitmap_waits", st.bitmap_waits},     {"bitmap_loads", st.bitmap_loads},
        {"history_writes", st.history_writes}, {"history_loads", st.history_loads}};
    for (const auto& [what, n] : figures) flashcopy[what] = flashcopy.value(what, uint64_t{0}) + n;
  }
  nlohmann::json out{{"cores", cores}, {"payload_copies", copies}, {"flashcopy", flashcopy},
                     {"nbd_connections", m.nbd ? m.nbd->connections() : 0},
                     {"iscsi_connections", m.iscsi ? m.iscsi->connections() : 0},
                     {"iscsi_sessions", m.iscsi ? m.iscsi->sessions() : 0}};
  // Where partners open data channels, and how many callers without the
  // cluster key (or a valid hello) it turned away.
  if (m.channel_listener)
    out["data_channel"] = {{"port", m.channel_listener->port()},
                           {"accepted", m.channel_listener->accepted()},
                           {"refused", m.channel_listener->refused()}};
  // The cluster links through the tunnel: callers in that proved the key
  // and that did not, links out that got through and that did not.
  if (m.tunnel) {
    channel::TunnelStats t = m.tunnel->stats();
    out["cluster_links"] = {{"accepted", t.accepted}, {"refused", t.refused},
                            {"connected", t.connected}, {"failed", t.failed},
                            {"tampered", t.tampered}};
  }
  return out;
}

// The cache of this node (every partition summed), or of one vdisk (its
// partition's share of it).
nlohmann::json Node::Impl::cache_json(std::optional<uint32_t> vdisk) {
  size_t n = cores.size();
  CacheReport r = map_reduce<CacheReport>(&CoreStack::cache_actor, [vdisk, n](CoreStack& core,
                                                                            size_t i) {
    // The partition that owns the vdisk gives its mode (node.cpp places a
    // vdisk's requests on core vdisk % cores).
    return report_of(*core.cache, vdisk ? &*vdisk : nullptr, vdisk && i == *vdisk % n);
  });
  if (!vdisk) {
    std::lock_guard lock(routes_mu);
    NodeCacheMode m = node_cache_mode(routed_config, policy);
    r.mode = to_string(m.mode);
    r.why = m.why;
  }
  const CacheCounts& c = r.counts;
  const CachePartitionStats& s = r.stats;
  uint64_t reads = r.io.reads, hits = r.io.read_hits;
  nlohmann::json out = {
      {"mode", r.mode},
      {"why", r.why},
      {"size_bytes", r.capacity_bytes},
      {"cached_bytes", uint64_t{c.clean + c.dirty + c.destaging} * kCacheBlockBytes},
      {"dirty_bytes", uint64_t{c.dirty + c.destaging} * kCacheBlockBytes},
      {"destaged_bytes", s.destaged_bytes},
      {"destage_rate", r.destage_rate},  // bytes per second, over the last second
      {"partner_copies_bytes", s.copies_held * kCacheBlockBytes},
      {"blocks_mirrored", s.mirrored},
      {"mirror_messages", s.mirror_batches},
      {"blocks_mirrored_by_reference", s.mirrored_by_reference},
      {"mirror_retries", s.mirror_retries},
      {"copies_taken_over", s.promoted},
      {"copies_discarded", s.discarded},
      {"waits", s.waits},
      {"reads", reads},
      {"read_hits", hits},
      {"hit_ratio", reads ? static_cast<double>(hits) / static_cast<double>(reads) : 0.0},
      {"writes", r.io.writes},
      {"bytes_read", r.io.bytes_read},
      {"bytes_hit", r.io.bytes_hit},
      {"bytes_written", r.io.bytes_written},
  };
  if (vdisk) {  // this vdisk's share
    out["dirty_bytes"] = r.vdisk_dirty_blocks * kCacheBlockBytes;
    out["destaged_bytes"] = r.io.bytes_destaged;
    out["destage_rate"] = r.io.destage_rate;
  }
  return out;
}

}  // namespace sve

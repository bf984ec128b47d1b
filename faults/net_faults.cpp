#include "faults/net_faults.hpp"

namespace sve {

void NetFaults::set(uint32_t peer, LinkFault fault) {
  std::lock_guard lock(mu_);
  links_[peer] = fault;
  any_.store(true, std::memory_order_release);
}

void NetFaults::clear() {
  std::lock_guard lock(mu_);
  links_.clear();
  any_.store(false, std::memory_order_release);
}

const LinkFault* NetFaults::active(uint32_t peer, uint64_t now_ms) const {
  auto it = links_.find(peer);
  if (it == links_.end() || it->second.until_ms <= now_ms) return nullptr;
  return &it->second;
}

NetFaults::Outgoing NetFaults::outgoing(uint32_t peer, uint64_t now_ms) {
  if (!any_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(mu_);
  const LinkFault* f = active(peer, now_ms);
  if (!f) return {};
  if (f->cut) return {true, false, 0};
  std::uniform_int_distribution<uint32_t> percent(0, 99);
  Outgoing out;
  out.drop = percent(rng_) < f->drop_percent;
  out.duplicate = !out.drop && percent(rng_) < f->duplicate_percent;
  out.delay_ms = f->delay_ms;
  return out;
}

bool NetFaults::channel_cut(uint32_t peer, uint64_t now_ms) {
  if (!any_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(mu_);
  const LinkFault* f = active(peer, now_ms);
  return f && (f->cut || f->channel_cut);
}

uint64_t NetFaults::channel_stall_ms(uint32_t peer, uint64_t now_ms) {
  if (!any_.load(std::memory_order_acquire)) return 0;
  std::lock_guard lock(mu_);
  const LinkFault* f = active(peer, now_ms);
  return f && f->channel_stall ? f->until_ms - now_ms : 0;
}

uint32_t NetFaults::channel_delay_ms(uint32_t peer, uint64_t now_ms) {
  if (!any_.load(std::memory_order_acquire)) return 0;
  std::lock_guard lock(mu_);
  const LinkFault* f = active(peer, now_ms);
  return f ? f->channel_delay_ms : 0;
}

bool NetFaults::drop_incoming(uint32_t peer, uint64_t now_ms) {
  if (!any_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(mu_);
  const LinkFault* f = active(peer, now_ms);
  return f && f->cut;
}

}  // namespace sve

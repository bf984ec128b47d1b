#include "model/model.hpp"

namespace sve {

const char* to_string(ExtentPolicy policy) {
  return policy == ExtentPolicy::striped ? "striped" : "sequential";
}

bool parse_policy(const std::string& text, ExtentPolicy& out) {
  if (text == "striped") out = ExtentPolicy::striped;
  else if (text == "sequential") out = ExtentPolicy::sequential;
  else return false;
  return true;
}

const char* to_string(FcState state) {
  switch (state) {
    case FcState::idle_or_copied: return "idle_or_copied";
    case FcState::preparing: return "preparing";
    case FcState::prepared: return "prepared";
    case FcState::starting: return "starting";
    case FcState::copying: return "copying";
    case FcState::stopped: return "stopped";
    case FcState::suspended: return "suspended";
    case FcState::stopping: return "stopping";
  }
  return "unknown";
}

namespace {
template <class Vec, class Pred>
auto* find_in(Vec& v, Pred pred) {
  for (auto& item : v)
    if (pred(item)) return &item;
  return static_cast<decltype(&v.front())>(nullptr);
}
}  // namespace

MdiskConfig* ClusterModel::find_mdisk(const std::string& n) {
  return find_in(mdisks, [&](auto& m) { return m.name == n; });
}
MdiskConfig* ClusterModel::find_mdisk(uint32_t i) {
  return find_in(mdisks, [&](auto& m) { return m.id == i; });
}
const MdiskConfig* ClusterModel::find_mdisk(uint32_t i) const {
  return find_in(mdisks, [&](auto& m) { return m.id == i; });
}
PoolConfig* ClusterModel::find_pool(const std::string& n) {
  return find_in(pools, [&](auto& p) { return p.name == n; });
}
PoolConfig* ClusterModel::find_pool(uint32_t i) {
  return find_in(pools, [&](auto& p) { return p.id == i; });
}
const PoolConfig* ClusterModel::find_pool(uint32_t i) const {
  return find_in(pools, [&](auto& p) { return p.id == i; });
}
VdiskConfig* ClusterModel::find_vdisk(const std::string& n) {
  return find_in(vdisks, [&](auto& v) { return v.name == n; });
}
const VdiskConfig* ClusterModel::find_vdisk(uint32_t i) const {
  return find_in(vdisks, [&](auto& v) { return v.id == i; });
}
FcMapConfig* ClusterModel::find_fcmap(const std::string& n) {
  return find_in(fcmaps, [&](auto& f) { return f.name == n; });
}

FcGroupConfig* ClusterModel::find_fcgroup(const std::string& n) {
  return find_in(fcgroups, [&](auto& g) { return g.name == n; });
}
HostConfig* ClusterModel::find_host(const std::string& n) {
  return find_in(hosts, [&](auto& h) { return h.name == n; });
}
const UserConfig* ClusterModel::find_user(const std::string& n) const {
  for (const auto& u : users)
    if (u.name == n) return &u;
  return nullptr;
}
const HostConfig* ClusterModel::find_host(uint32_t i) const {
  for (const auto& h : hosts)
    if (h.id == i) return &h;
  return nullptr;
}
const Reservations* ClusterModel::find_reservations(uint32_t vdisk) const {
  for (const auto& r : reservations)
    if (r.vdisk == vdisk) return &r.state;
  return nullptr;
}
IoGroupConfig* ClusterModel::find_iogrp(const std::string& n) {
  return find_in(iogrps, [&](auto& g) { return g.name == n; });
}
const IoGroupConfig* ClusterModel::find_iogrp(uint32_t i) const {
  return find_in(iogrps, [&](auto& g) { return g.id == i; });
}

}  // namespace sve

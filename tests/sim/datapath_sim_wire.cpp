// The data-path simulator: the wire, the back end and the interconnect.
#include "tests/sim/datapath_sim_impl.hpp"

namespace sve::datapath_sim::detail {

void SimDisk::submit(IoRequestPtr r) { sim->disk_submit(*node, std::move(r)); }
void SimMirror::mirror(uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  sim->mirror(*node, partner, batch, id);
}
void SimMirror::release(uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
                        const std::vector<uint64_t>& seqs) {
  sim->release(*node, partner, vdisk, blocks, seqs);
}
void SimRemote::submit(IoRequestPtr r) { sim->forward_out(*node, std::move(r)); }
void ReturnPort::io_done(IoRequestPtr r) { node->forward->io_done(std::move(r)); }
void HostPort::io_done(IoRequestPtr r) { sim->host_done(*node, std::move(r)); }
void InboundPort::io_done(IoRequestPtr r) { sim->inbound_done(*node, std::move(r)); }

// ---- the wire and the back end ---------------------------------------------

void Sim::send(uint32_t from, uint32_t to, std::function<void()> deliver,
               std::function<void()> lost) {
  uint64_t from_life = node(from).life, to_life = node(to).life;
  at(now_us + 20 + rand(600), [=, this] {
    if (node(from).life == from_life && node(to).life == to_life && linked(from, to))
      return deliver();
    // The connection broke (a node died or was cut off): whoever waits on
    // it notices a little later. `lost` checks that its waiter still is.
    if (lost) at(now_us + kDetectUs, lost);
  });
}

void Sim::disk_submit(Node& n, IoRequestPtr r) {
  uint64_t delay = 30 + rand(400);
  if (chance(disk_stall)) delay = 2'000 + rand(kMaxDiskUs - 2'000);
  // As the real back end (kRestartQuietMs): a new process holds its
  // changes until its predecessor's can no longer land.
  if (r->op != IoOp::read && r->op != IoOp::flush && now_us < n.quiet_until_us)
    delay += n.quiet_until_us - now_us;
  uint32_t id = n.id;
  uint64_t life = n.life;
  // What a write carries, as the device took it: the buffer may be the
  // cache's memory, gone with the node if it dies meanwhile.
  auto data = std::make_shared<std::vector<uint8_t>>();
  if (r->op == IoOp::write) {
    data->resize(r->length);
    r->buffer->copy_out(r->buffer_offset, r->length, data->data());
  }
  at(now_us + delay, [=, this]() mutable {
    Node& m = node(id);
    if (!m.up || m.life != life) {
      // The node died with it in flight: the device may still do it.
      if (r->op != IoOp::read && chance(0.5)) apply_disk(*r, *data);
      return;
    }
    int status = 0;
    if (chance(disk_error)) status = EIO;
    if (status == 0) apply_disk(*r, *data);
    complete(std::move(r), status);
  });
}

void Sim::apply_disk(IoRequest& r, const std::vector<uint8_t>& written) {
  if (r.op == IoOp::flush) return;
  auto it = mdisks.find(r.volume);
  if (it == mdisks.end() || r.offset + r.length > it->second.size()) {
    fail("a request beyond mdisk " + std::to_string(r.volume));
    return;
  }
  uint8_t* at = it->second.data() + r.offset;
  if (r.op == IoOp::write)
    std::memcpy(at, written.data(), r.length);
  else if (r.op == IoOp::read)
    r.buffer->copy_in(r.buffer_offset, r.length, at);
  else
    std::memset(at, 0, r.length);
}

void Sim::mirror(Node& n, uint32_t partner, const MirrorBatch& batch, uint64_t id) {
  uint32_t self = n.id;
  uint64_t life = n.life;
  auto answer = [=, this](bool ok) {
    Node& m = node(self);
    if (m.up && m.life == life) m.cache->mirror_done(id, ok);
  };
  if (!nodes.count(partner)) return answer(false);
  send(
      self, partner,
      [=, this] {
        Node& p = node(partner);
        int status = ESTALE;
        if (opt.broken == "mirror_fakes_success") {
          status = 0;
        } else if (accepting(p)) {
          status = p.cache->store_mirror(batch);
          if (status == 0) ++result.mirrored;
        }
        send(partner, self, [=] { answer(status == 0); }, [=] { answer(false); });
      },
      [=] { answer(false); });
}

void Sim::release(Node& n, uint32_t partner, uint32_t vdisk, const std::vector<uint64_t>& blocks,
                  const std::vector<uint64_t>& seqs) {
  if (!nodes.count(partner)) return;
  uint32_t origin = n.id;
  send(
      origin, partner,
      [=, this] {
        Node& p = node(partner);
        p.cache->release_mirror(origin, vdisk, blocks, seqs);
      },
      nullptr);
}

// The interconnect (io/interconnect/interconnect_actor.cpp), outbound: a
// request goes to its vdisk's owner; sent again only when the owner is known
// not to have it (ESTALE) or the connection broke; EIO when no owner takes
// it in time.
void Sim::forward_out(Node& n, IoRequestPtr r) {
  uint64_t id = n.next_id++;
  Outbound& out = n.outbound[id];
  out.op = op_of.count(r.get()) ? op_of[r.get()] : 0;
  out.request = std::move(r);
  out.give_up_ms = now_ms() + kGiveUpMs;
  dispatch(n, id);
}

void Sim::retry_later(Node& n, uint64_t id) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  if (now_ms() >= it->second.give_up_ms) return finish(n, id, EIO);
  uint32_t self = n.id;
  uint64_t life = n.life;
  at(now_us + kRetryMs * 1000, [=, this] {
    Node& m = node(self);
    if (m.up && m.life == life) dispatch(m, id);
  });
}

void Sim::finish(Node& n, uint64_t id, int status) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  IoRequestPtr r = std::move(it->second.request);
  n.outbound.erase(it);
  complete(std::move(r), status);
}

void Sim::dispatch(Node& n, uint64_t id) {
  auto it = n.outbound.find(id);
  if (it == n.outbound.end()) return;
  IoRequestPtr& r = it->second.request;
  const VdiskRoute* route = n.routes && n.routes->serving ? n.routes->find(r->volume) : nullptr;
  if (!route || route->owner == 0 || route->hold) return retry_later(n, id);
  if (route->owner == n.id) {  // it came here meanwhile
    IoRequestPtr mine = std::move(r);
    n.outbound.erase(it);
    n.cache->submit(std::move(mine));
    return;
  }
  uint32_t owner = route->owner;
  uint64_t attempt = ++it->second.attempt;
  uint64_t op = it->second.op;
  ++result.forwarded;
  // What travels: the request's fields and a write's payload.
  IoRequestPtr copy = make_request();
  copy->op = r->op;
  copy->flags = r->flags;
  copy->volume = r->volume;
  copy->offset = r->offset;
  copy->length = r->length;
  if ((r->op == IoOp::read || r->op == IoOp::write) && r->length) {
    copy->buffer = Buffer::allocate(r->length);
    if (r->op == IoOp::write) {
      std::vector<char> bytes(r->length);
      r->buffer->copy_out(r->buffer_offset, r->length, bytes.data());
      copy->buffer->copy_in(0, r->length, bytes.data());
    }
  }
  uint32_t self = n.id;
  uint64_t life = n.life;
  if (op) ++ops[op].remote;
  send(
      self, owner,
      [=, this] { serve_inbound(node(owner), self, life, id, attempt, op, copy); },
      [=, this] {
        if (op && ops.count(op)) --ops[op].remote;
        lost_answer(self, life, id, attempt);
      });
}

// The requester of a forwarded request hears nothing back because the
// connection broke: it sends the request again once the routes allow.
void Sim::lost_answer(uint32_t requester, uint64_t life, uint64_t out_id, uint64_t attempt) {
  Node& s = node(requester);
  if (!s.up || s.life != life) return;
  auto o = s.outbound.find(out_id);
  if (o != s.outbound.end() && o->second.attempt == attempt) retry_later(s, out_id);
}

void Sim::answer(uint32_t owner, const Inbound& in, int status, IoRequestPtr done) {
  send(
      owner, in.from,
      [=, this] {
        Node& s = node(in.from);
        if (s.life != in.from_life) return;
        auto o = s.outbound.find(in.out_id);
        if (o == s.outbound.end() || o->second.attempt != in.attempt) return;
        if (status == ESTALE) return retry_later(s, in.out_id);
        IoRequest& mine = *o->second.request;
        if (status == 0 && mine.op == IoOp::read) {
          std::vector<char> bytes(mine.length);
          done->buffer->copy_out(0, mine.length, bytes.data());
          mine.buffer->copy_in(mine.buffer_offset, mine.length, bytes.data());
        }
        finish(s, in.out_id, status);
      },
      [=, this] { lost_answer(in.from, in.from_life, in.out_id, in.attempt); });
}

void Sim::serve_inbound(Node& owner, uint32_t from, uint64_t from_life, uint64_t out_id,
                        uint64_t attempt, uint64_t op, IoRequestPtr copy) {
  Inbound in{from, from_life, out_id, attempt, op};
  const RouteTable* routes = owner.routes.get();
  if (!accepting(owner) || !routes->find(copy->volume) || !routes->local(copy->volume)) {
    if (op && ops.count(op)) --ops[op].remote;
    return answer(owner.id, in, ESTALE, nullptr);
  }
  uint64_t iid = owner.next_id++;
  owner.inbound[iid] = in;
  copy->cookie = iid;
  copy->client = &owner.inbound_port;
  owner.cache->submit(std::move(copy));
}

void Sim::inbound_done(Node& owner, IoRequestPtr r) {
  auto it = owner.inbound.find(r->cookie);
  if (it == owner.inbound.end()) return;
  Inbound in = it->second;
  owner.inbound.erase(it);
  if (in.op && ops.count(in.op)) --ops[in.op].remote;
  answer(owner.id, in, r->status, r);
}

}  // namespace sve::datapath_sim::detail

// The point-in-time copy facility, case by case over a memory disk
// (flashcopy_fixture.hpp's OneFacility): incremental restarts, starts and
// stops that wait for what is below, histories and bitmaps read back after
// a restart, and page writes that land late.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

#include "flashcopy_fixture.hpp"

using namespace sve;
using namespace sve::fc_test;

TEST_CASE("an incremental restart copies only the grains changed since the last start",
          "[flashcopy]") {
  OneFacility f(7);
  CopyLayout& c = f.map(9, 1, 2, true);
  const uint64_t grains = kVdiskBytes / kGrain;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.copy_to_end(c);
  CHECK(f.copies() == grains);
  // Idle: two source grains and one target grain change (the target's
  // write is its own, and the restart must undo it).
  f.change_three_grains(1, 2);
  CHECK(f.copy_to_end(c) == 3);
  CHECK(f.fc.stats().incremental_kept == grains - 3);
  CHECK(f.same(1, 2));
  // A write during a start that a stop ends: copied again at the next.
  f.start(c);
  f.io(IoOp::write, 1, 3 * kGrain, 512, 'd');  // (every grain equal already: noted only)
  c.state = FcState::stopped;
  f.publish();
  CHECK(f.copy_to_end(c) == 1);  // grain 3: copied, but written since
  // A start that does not follow the one the history describes copies all.
  c.start_seq += 1;  // (a start this facility never saw)
  CHECK(f.copy_to_end(c) == grains);
  // Another node executed the source for a while (it took the vdisks over,
  // and back): what this core kept does not count, the restart copies all.
  auto away = std::make_shared<RouteTable>();
  away->self = 1;
  away->vdisks[1].owner = away->vdisks[2].owner = 2;
  f.routes = away;
  f.publish();
  auto back = std::make_shared<RouteTable>(*away);
  back->vdisks[1].owner = back->vdisks[2].owner = 1;
  f.routes = back;
  f.publish();
  CHECK(f.copy_to_end(c) == grains);
}

TEST_CASE("an incremental mapping's refresh copies what a restore's writes changed",
          "[flashcopy]") {
  OneFacility f(3);
  CopyLayout& x = f.map(9, 1, 2, true);   // a clone, incremental
  CopyLayout& r = f.map(10, 2, 1, false);  // its restore
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.copy_to_end(x);
  f.io(IoOp::write, 2, 3 * kGrain, kGrain, 'b');
  // The restore, and a host's write to its target (x's source) meanwhile:
  // the restore's facility path, not the incremental one, takes it.
  f.start(r);
  f.io(IoOp::write, 1, 6 * kGrain, 512, 'c');
  f.run_to_end(r);
  f.copy_to_end(x);  // the refresh
  CHECK(f.same(1, 2));
  // A restore from another vdisk changes x's source wholesale, without a
  // host write: x's history is not kept, its refresh copies every grain.
  CopyLayout& o = f.map(11, 4, 1, false);
  f.publish();
  f.io(IoOp::write, 4, 0, kVdiskBytes, 'z');
  f.copy_to_end(o);
  f.copy_to_end(x);
  CHECK(f.same(1, 2));
}

TEST_CASE("a start waits for grain copies of the previous start still below", "[flashcopy]") {
  OneFacility f(5);
  CopyLayout& c = f.map(9, 1, 2, false);
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.start(c);
  // Background copies run until their writes to the target are held below.
  std::vector<IoRequestPtr> held;
  auto hold_copy_writes = [&] {
    f.hold(held, [](const IoRequest& r) { return r.op == IoOp::write && r.volume == 2; });
  };
  f.fc.tick(f.now += 50);
  f.fc.tick(f.now += 1000);
  for (int i = 0; i < 1000 && held.empty(); ++i) {
    hold_copy_writes();
    if (!f.disk.step(f.rng)) f.fc.tick(f.now += 50);
  }
  hold_copy_writes();
  REQUIRE_FALSE(held.empty());
  // Stopped, and started again: not drained while those writes are below
  // (one landing after the new point in time would undo its copy).
  c.state = FcState::stopped;
  f.publish();
  c.state = FcState::starting;
  c.start_seq += 1;
  f.publish();
  CHECK_FALSE(f.has(c.id, CopyEvent::Kind::drained));
  for (auto& r : held) f.disk.queue.push_back(std::move(r));
  f.drain();
  CHECK(f.has(c.id, CopyEvent::Kind::drained));
}

TEST_CASE("a stopping mapping is cleaned only once the grains copied for it are durable",
          "[flashcopy]") {
  OneFacility f(9);
  CopyLayout& a = f.map(9, 1, 2, false);
  CopyLayout& b = f.map(10, 2, 3, false);  // a snapshot of a's target
  a.copy_rate = b.copy_rate = 0;
  a.bitmap = 109;
  b.bitmap = 110;
  a.home = b.home = 1;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.start(a);
  a.order = 1;
  f.start(b);
  b.order = 2;
  f.publish();
  // a stops: b reads through it, so a cleans, and b's bits must reach the disk.
  a.state = FcState::stopping;
  a.clean_rate = 150;
  f.publish();
  std::vector<IoRequestPtr> held;  // b's bitmap page writes
  auto hold_pages = [&] {
    f.hold(held, [&](const IoRequest& r) { return r.op == IoOp::write && r.volume == b.bitmap; });
  };
  for (int i = 0; i < 100; ++i) {
    f.fc.tick(f.now += 50);
    do hold_pages();
    while (f.disk.step(f.rng));
    CHECK_FALSE(f.has(a.id, CopyEvent::Kind::cleaned));
  }
  REQUIRE_FALSE(held.empty());
  for (auto& r : held) f.disk.queue.push_back(std::move(r));
  for (int i = 0; i < 200 && !f.has(a.id, CopyEvent::Kind::cleaned); ++i) {
    f.drain();
    f.fc.tick(f.now += 50);
  }
  CHECK(f.has(a.id, CopyEvent::Kind::cleaned));
  CHECK(f.fc.stats().clean_copies == kVdiskBytes / kGrain);
}

TEST_CASE("an incremental history survives a restart on the back end", "[flashcopy]") {
  OneFacility f(11);
  CopyLayout& c = f.map(9, 1, 2, true);
  c.bitmap = 109;
  const uint64_t grains = kVdiskBytes / kGrain;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.copy_to_end(c);
  f.fc.tick(f.now += 50);  // the history, written whole
  f.drain();
  f.restart();  // read back: nothing changed since
  CHECK(f.fc.stats().history_loads == 1);
  // Three grains change (source writes, a target write); each write waits
  // until the back end no longer says its grain is equal.
  f.change_three_grains(1, 2);
  CHECK(f.fc.stats().history_writes >= 1);
  f.restart();
  CHECK(f.copy_to_end(c) == 3);
  CHECK(f.fc.stats().incremental_kept == grains - 3);
  CHECK(f.same(1, 2));
  // A history the model says is lost (a restore wrote its source, say) is
  // not read back: the refresh copies all.
  f.fc.tick(f.now += 50);
  f.drain();
  c.history_lost = true;  // (until its next start is committed)
  f.restart();
  CHECK(f.copy_to_end(c) == grains);
}

TEST_CASE("an incremental start's writes and its history outlive a crash before they are written whole",
          "[flashcopy]") {
  OneFacility f(13);
  CopyLayout& c = f.map(9, 1, 2, true);
  c.bitmap = 109;
  c.changes_on_bitmap = true;
  const uint64_t grains = kVdiskBytes / kGrain;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.copy_to_end(c);
  f.fc.tick(f.now += 50);
  f.drain();
  // A refresh (nothing to copy), and writes during it: each waits until the
  // second plane says its grain was written.
  f.start(c);
  std::vector<IoRequestPtr> held;
  auto hold_notes = [&] {
    f.hold(held, [&](const IoRequest& r) {
      return r.op == IoOp::write && r.volume == c.bitmap &&
             r.offset >= fc_changed_plane_offset(grains);
    });
  };
  auto w = make_request();
  w->op = IoOp::write;
  w->volume = 1;
  w->offset = 4 * kGrain;
  w->length = 512;
  w->buffer = Buffer::allocate(512);
  std::memset(w->buffer->data(), 'n', 512);
  w->client = &f.host;
  f.fc.submit(w);
  auto answered = [&] {
    return std::any_of(f.host.done.begin(), f.host.done.end(),
                       [&](const IoRequestPtr& r) { return r.get() == w.get(); });
  };
  do hold_notes();
  while (f.disk.step(f.rng));
  REQUIRE(held.size() == 1);
  CHECK_FALSE(answered());  // not below before its note
  for (auto& r : held) f.disk.queue.push_back(std::move(r));
  f.drain();
  CHECK(answered());
  CHECK(w->status == 0);
  f.change_three_grains(1, 2);
  // The process restarts during the start: the bitmap read back brings the
  // writes, and the history this start leaves is whole.
  f.restart();
  f.run_to_end(c);
  CHECK(f.copy_to_end(c) == 4);
  CHECK(f.same(1, 2));
  // A start that ends with its copied bits on the back end (a tick while it
  // copies), the process restarting before the next tick writes its history.
  auto refresh_then_restart = [&](bool write_during, bool write_after) {
    f.start(c);
    if (write_during) f.io(IoOp::write, 2, 7 * kGrain, 512, 'y');  // (on the second plane)
    for (int i = 0; i < 1000 && !f.has(c.id, CopyEvent::Kind::copied); ++i) {
      f.fc.tick(f.now += 50);
      f.drain();
    }
    f.fc.tick(f.now += 50);
    f.drain();
    c.state = FcState::idle_or_copied;
    f.publish();
    if (write_after) f.change_three_grains(1, 2);  // (each waits for a page of the history)
    f.restart();
  };
  // A grain written during the start: the start's pages say so.
  refresh_then_restart(true, false);
  CHECK(f.copy_to_end(c) == 1);
  CHECK(f.same(1, 2));
  // Three written after it, before that tick: not taken for equal.
  refresh_then_restart(false, true);
  CHECK(f.copy_to_end(c) == 3);
  CHECK(f.fc.stats().incremental_kept == grains - 3);
  CHECK(f.same(1, 2));
  // Nothing written: the start's pages stand for its history, nothing to copy.
  refresh_then_restart(false, false);
  CHECK(f.copy_to_end(c) == 0);
  CHECK(f.fc.stats().incremental_kept == grains);
  CHECK(f.same(1, 2));
}

TEST_CASE("a page write that lands after its bitmap was read back hides nothing written since",
          "[flashcopy]") {
  OneFacility f(17);
  CopyLayout& c = f.map(9, 1, 2, false);
  c.copy_rate = 0;  // a snapshot: only writes copy grains
  c.bitmap = 109;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.start(c);
  // A source write to grain 0: its grain is copied, then its page written;
  // that page write is still in the device queue of the node that loses
  // the mapping. (Its source write then goes on here, where no back end
  // refuses it as a fenced node's is: grain 0 is not what this case checks.)
  IoRequestPtr first;
  auto late = f.write_leaving_late_page(1, 0, 'b', 109, first);
  // Another facility reads the bitmap back and copies three grains of the
  // page, one after the other (three versions of the page, each durable:
  // the last in the slot the late write aims at, were it written once).
  f.restart();
  CHECK(f.fc.stats().bitmap_loads == 1);
  for (uint64_t g = 1; g <= 3; ++g) f.io(IoOp::write, 1, g * kGrain, 512, 'c');
  f.land(late);  // on whichever slot it was aimed at
  // The next facility to read it back still knows both grains copied: the
  // target reads them as they were at the start, not as the source is.
  f.restart();
  auto target = f.io(IoOp::read, 2, kGrain, 3 * kGrain, 0);
  for (uint64_t i = 0; i < 3 * kGrain; ++i) {
    INFO("byte " << i);
    REQUIRE(target->buffer->data()[i] == 'a');
  }
}

TEST_CASE("a history page write that lands after the history was read back hides no change since",
          "[flashcopy]") {
  OneFacility f(19);
  CopyLayout& c = f.map(9, 1, 2, true);
  c.bitmap = 109;
  c.changes_on_bitmap = true;
  f.publish();
  f.io(IoOp::write, 1, 0, kVdiskBytes, 'a');
  f.copy_to_end(c);
  f.fc.tick(f.now += 50);  // the history, written whole
  f.drain();
  // A write to grain 0 waits for the history's page that says it changed;
  // that page write is still in the device queue of the node that loses
  // the mapping (the write itself fails: it never reaches the disk).
  IoRequestPtr first;
  auto late = f.write_leaving_late_page(1, 0, 'b', 109, first);
  CHECK(first->status == EIO);
  // Another facility reads the history back; three grains change, one
  // after the other (three versions of the page, each durable before its
  // write goes on: the last in the slot the late write aims at, were it
  // written once).
  f.restart();
  CHECK(f.fc.stats().history_loads == 1);
  for (uint64_t g = 1; g <= 3; ++g) f.io(IoOp::write, 1, g * kGrain, 512, 'c');
  f.land(late);
  // The next facility to read it back claims none of them equal: the
  // refresh copies those three (grain 0 did not change: its write failed).
  f.restart();
  CHECK(f.copy_to_end(c) == 3);
  CHECK(f.same(1, 2));
}

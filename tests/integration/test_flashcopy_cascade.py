"""Cascades and restores while what they read through is still copying,
with python3-libnbd on a two-core node: a snapshot (copy rate 0) of the
source; a snapshot of that snapshot; a restore of the source from the
first snapshot, started while it is still a snapshot; hosts write all
three vdisks throughout, and each reads as its own point in time plus its
own writes. The I/O process is SIGKILLed with the chain active: the three
bitmaps are read back and nothing changes. Stopping the first snapshot,
which the other two read through, cleans for them first (here the
restore's copies copy its grains, so it ends copied). Stopping the second
under a snapshot of its own goes through `stopping` (its grains copied to
that one first, at the clean rate) to `stopped`: its target is offline from
the stop on, the others stay exact and copy to their end."""
import os
import random
import signal

from harness import check, run, wait_until
from libnbd_client import connect

MiB = 1 << 20
SIZE = 32 * MiB


def show(node, name):
    return node.ctl_json("fcmap", "show", name)


def known(node, name):
    return show(node, name).get("progress", {}).get("known", False)


def offline(disk, what):
    """Waits for reads of `disk` to fail with EIO (the node's data path
    hears of a committed change a moment after the admin command returns)."""
    def refused():
        try:
            disk.h.pread(4096, 0)
        except Exception as e:  # nbd.Error: EIO
            check("EIO" in str(e) or "Input/output" in str(e), f"{what}: {e}")
            return True
        return False
    wait_until(refused, f"{what} offline", timeout=10)


def start(node, name):
    node.ctl("fcmap", "start", name, "--prep")
    wait_until(lambda: show(node, name)["state"] == "copying" and known(node, name),
               f"{name} copying on the node that executes it")


class Disk:
    """A vdisk and what it must read as."""

    def __init__(self, node, name, data):
        self.node, self.name, self.data = node, name, bytearray(data)
        self.h = connect(node.url(name))

    def reconnect(self):
        self.h = connect(self.node.url(self.name))

    def scribble(self, rng, count):
        for _ in range(count):
            off = rng.randrange(0, SIZE // 512 - 16) * 512
            piece = rng.randbytes(512 * rng.randrange(1, 16))
            self.h.pwrite(piece, off)
            self.data[off:off + len(piece)] = piece

    def verify(self, when):
        got = self.h.pread(SIZE, 0)
        if got != bytes(self.data):
            first = next(i for i in range(SIZE) if got[i] != self.data[i])
            raise AssertionError(f"{self.name} {when}: differs from byte {first}")


def test(make):
    node = make(cores=2).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 300 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    for name in ("src", "snap", "snap2"):
        node.ctl("vdisk", "create", name, "--pool", "p", "--size", "32M")
    rng = random.Random(16)
    src = Disk(node, "src", bytes(SIZE))
    src.h.pwrite(rng.randbytes(SIZE), 0)
    src.data[:] = src.h.pread(SIZE, 0)

    # A snapshot of the source, then a snapshot of the snapshot (64K and
    # 256K grains), each taken while the other is a copy-rate-0 snapshot.
    node.ctl("fcmap", "create", "--source", "src", "--target", "snap", "--name", "m1",
             "--copyrate", "0", "--grain", "64K", "--cleanrate", "150")
    start(node, "m1")
    snap = Disk(node, "snap", src.data)
    src.scribble(rng, 200)
    snap.scribble(rng, 100)
    node.ctl("fcmap", "create", "--source", "snap", "--target", "snap2", "--name", "m2",
             "--copyrate", "0")
    start(node, "m2")
    snap2 = Disk(node, "snap2", snap.data)
    for d in (src, snap, snap2):
        d.scribble(rng, 150)
    for d in (src, snap, snap2):
        d.verify("in a cascade")

    # A restore of the source from the snapshot, which is still one: the
    # source reads as the snapshot at once, the two snapshots unchanged.
    node.ctl("fcmap", "create", "--source", "snap", "--target", "src", "--name", "m3",
             "--copyrate", "0")
    start(node, "m3")
    src.data[:] = snap.data
    for d in (src, snap, snap2):
        d.verify("once the restore started")
    for d in (src, snap, snap2):
        d.scribble(rng, 150)
    for d in (src, snap, snap2):
        d.verify("written during the restore")

    # The I/O process dies with the chain active: every bitmap is read back.
    os.kill(node.io_pid(), signal.SIGKILL)
    wait_until(lambda: node.ctl_json("daemon", "status")["restarts"] == 1 and
               node.ctl_json("daemon", "status")["io_serving"], "the I/O process back")
    for name in ("m1", "m2", "m3"):
        wait_until(lambda: known(node, name), f"{name}'s bitmap read back")
        check(show(node, name)["state"] == "copying", f"{name} still copying")
    for d in (src, snap, snap2):
        d.reconnect()
        d.verify("after the restart")
        d.scribble(rng, 50)

    # m1 stops: m2 and m3 read through its target, so it cleans first. The
    # restore's copies into the source copy m1's grains first, so m1 ends
    # copied here (its target its own), not stopped.
    stats = lambda: node.ctl_json("node", "stats")["flashcopy"]["clean_copies"]
    check(sorted(show(node, "m1")["dependent_fcmaps"]) == ["m2", "m3"],
          f"m1's dependent mappings: {show(node, 'm1')}")
    check(show(node, "m2")["dependent_fcmaps"] == [], "m2 has no dependent mapping")
    before = stats()
    node.ctl("fcmap", "stop", "m1")
    wait_until(lambda: show(node, "m1")["state"] in ("stopped", "idle_or_copied"),
               "m1 cleaned", timeout=120)
    check(stats() > before, "no grain was cleaned for the mappings reading through m1")
    if show(node, "m1")["state"] == "idle_or_copied":
        snap.verify("m1 copied by its cleaning")
    for d in (src, snap2):
        d.verify("once m1 stopped")
        d.scribble(rng, 50)

    # A snapshot of the snapshot's snapshot, and m2 stopped under it: m4
    # gets what it read through m2, m2's target goes offline.
    node.ctl("vdisk", "create", "snap3", "--pool", "p", "--size", "32M")
    node.ctl("fcmap", "create", "--source", "snap2", "--target", "snap3", "--name", "m4",
             "--copyrate", "0")
    start(node, "m4")
    snap3 = Disk(node, "snap3", snap2.data)
    for d in (snap2, snap3):
        d.scribble(rng, 50)
    # Cleaned at the slowest rate first (128 KiB/s), so that `stopping`
    # lasts: its target is offline already then, as SVC's.
    node.ctl("fcmap", "set", "m2", "--cleanrate", "1")
    before = stats()
    node.ctl("fcmap", "stop", "m2")
    check(show(node, "m2")["state"] == "stopping", f"m2 stopping: {show(node, 'm2')}")
    offline(snap2, "a stopping mapping's target")
    snap3.verify("while m2 stops")
    node.ctl("fcmap", "set", "m2", "--cleanrate", "150")
    wait_until(lambda: show(node, "m2")["state"] == "stopped", "m2 cleaned and stopped",
               timeout=120)
    cleaned = stats() - before
    check(cleaned > 0, "no grain was cleaned for m4")
    offline(snap2, "a stopped mapping's target")
    snap3.verify("once m2 stopped")

    # m3 and m4 copy to their end: their targets are their own.
    for name in ("m3", "m4"):
        node.ctl("fcmap", "set", name, "--copyrate", "150")
    for name in ("m3", "m4"):
        node.ctl("fcmap", "show", name, "--wait")
        check(show(node, name)["state"] == "idle_or_copied", f"{name} copied")
    for d in (src, snap3):
        d.verify("copied")
    for name in ("m4", "m3", "m2", "m1"):
        node.ctl("fcmap", "delete", name)
    print(f"cascade: {cleaned} grains cleaned; every read exact")
    return 0


if __name__ == "__main__":
    run(test)

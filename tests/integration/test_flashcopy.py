"""Point-in-time copy (fcmap) with real clients (qemu-io, python3-libnbd) on
a two-core node whose source and target are served by different cores: a
snapshot (copy rate 0) reads as the source was at the start while the
source is overwritten; target writes copy their grain first; a thin target
holds only the grains that changed; the background copy completes under
concurrent source writes and the target equals the snapshot byte for byte;
a stopped mapping takes its target offline; a restart of the I/O process
while copying reads the bitmap back from the back end and the copy goes on
to a target equal to the point in time; and every limit a user can hit is
a clear error. A restore (the mapping back from a copied clone) makes
the source read as the clone at once, while hosts write it."""
import os
import random
import signal
import threading

from harness import check, qemu_io, run, wait_until
from libnbd_client import connect

MiB = 1 << 20


def state(node, name):
    return node.ctl_json("fcmap", "show", name)["state"]


def started(node, name):
    node.ctl("fcmap", "prepare", name)
    wait_until(lambda: state(node, name) == "prepared", f"{name} prepared")
    node.ctl("fcmap", "start", name)
    wait_until(lambda: state(node, name) == "copying", f"{name} copying")


def test(make):
    node = make(cores=2).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 200 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    node.ctl("vdisk", "create", "src", "--pool", "p", "--size", "32M")
    node.ctl("vdisk", "create", "snap", "--pool", "p", "--size", "32M", "--thin",
             "--grain", "64K", "--rsize", "4M")
    node.ctl("vdisk", "create", "full", "--pool", "p", "--size", "32M")
    node.ctl("vdisk", "create", "small", "--pool", "p", "--size", "16M")
    ids = {v["name"]: v["id"] for v in node.ctl_json("vdisk", "list")}
    check(ids["src"] % 2 != ids["snap"] % 2, f"source and target on one core: {ids}")
    src, snap, full = node.url("src"), node.url("snap"), node.url("full")
    qemu_io(src, "write -P 0x11 0 8M")

    # What a user can get wrong, each refused with one clear line.
    node.ctl_fails("fcmap", "create", "--source", "src", "--target", "small", contains="same size")
    node.ctl_fails("fcmap", "create", "--source", "src", "--target", "src", contains="its own")
    node.ctl_fails("fcmap", "create", "--source", "src", "--target", "nope", contains="no vdisk")
    node.ctl_fails("fcmap", "create", "--source", "src", "--target", "snap", "--grain", "128K",
                   contains="64K or 256K")
    node.ctl_fails("fcmap", "create", "--source", "src", "--target", "snap", "--copyrate", "151")
    node.ctl("fcmap", "create", "--source", "src", "--target", "snap", "--name", "m1",
             "--copyrate", "0", "--grain", "64K")
    node.ctl_fails("fcmap", "create", "--source", "full", "--target", "snap",
                   contains="already the target")
    node.ctl_fails("fcmap", "start", "m1", contains="prepare it first")
    node.ctl_fails("vdisk", "delete", "src", contains="fcmap 'm1'")
    node.ctl_fails("vdisk", "expand", "src", "--size", "64M", contains="fcmap 'm1'")
    check(state(node, "m1") == "idle_or_copied", "a new mapping is idle")

    # A snapshot: the source changes, the target keeps the point in time.
    # (What the target's cache kept from before must not show through.)
    qemu_io(snap, "read -P 0 0 64K", "read -P 0 64K 64K")
    started(node, "m1")
    used_at_start = node.ctl_json("vdisk", "show", "snap")["thin_usage"]["used_capacity"]
    qemu_io(src, "write -P 0x22 0 4M", "write -P 0x23 20M 1M")
    qemu_io(snap, "read -P 0x11 0 8M", "read -P 0 8M 24M")
    qemu_io(src, "read -P 0x22 0 4M", "read -P 0x11 4M 4M", "read -P 0x23 20M 1M")
    # A target write of part of a grain: the rest of the grain is the point
    # in time; the source does not change.
    qemu_io(snap, "write -P 0x33 6M 4K")
    qemu_io(snap, "read -P 0x11 6208K 60K", "read -P 0x33 6M 4K", "read -P 0x11 5M 1M")
    qemu_io(src, "read -P 0x11 6M 64K")
    used = node.ctl_json("vdisk", "show", "snap")["thin_usage"]["used_capacity"]
    check(used - used_at_start <= 5 * MiB + 64 * 1024,
          f"the thin target holds {used - used_at_start} bytes for 5 MiB changed")
    show = node.ctl_json("fcmap", "show", "m1")
    check(show["progress"]["known"] and 0 < show["progress"]["percent"] < 100,
          f"progress of a snapshot: {show}")
    node.ctl_fails("vdisk", "move", "snap", "--node", "1", contains="fcmap 'm1'")
    node.ctl_fails("fcmap", "delete", "m1", contains="--force")

    # The background copy, under concurrent source writes: the target ends
    # as the point in time, byte for byte.
    h = connect(src)
    # The point in time, and the target's own write.
    before = bytearray(b"\x11" * (8 * MiB) + bytes(24 * MiB))
    before[6 * MiB:6 * MiB + 4096] = b"\x33" * 4096
    stop = threading.Event()
    wrote = []

    def writer():
        w = connect(src)
        rng = random.Random(5)
        while not stop.is_set():
            off = rng.randrange(0, 32 * MiB // 4096) * 4096
            w.pwrite(bytes([rng.randrange(1, 256)]) * 4096, off)
            wrote.append(off)
        w.shutdown()

    t = threading.Thread(target=writer)
    t.start()
    node.ctl("fcmap", "set", "m1", "--copyrate", "100")  # 64 MiB/s
    try:
        wait_until(lambda: state(node, "m1") == "idle_or_copied", "m1 copied", timeout=60)
    except AssertionError:
        print("m1 as the node shows it:", node.ctl_json("fcmap", "show", "m1"))
        raise
    stop.set()
    t.join()
    check(len(wrote) > 100, f"only {len(wrote)} writes during the copy")
    g = connect(snap)
    check(g.pread(32 * MiB, 0) == bytes(before), "the target is not the point in time")
    g.shutdown()
    check(node.ctl_json("fcmap", "show", "m1")["progress"]["percent"] == 100, "progress at the end")
    # Independent now: the target is cached and written as any vdisk.
    qemu_io(snap, "write -P 0x44 0 1M", "read -P 0x44 0 1M")
    node.ctl("fcmap", "delete", "m1")
    h.shutdown()

    # A stopped mapping: its target goes offline until it is deleted (or
    # prepared again).
    qemu_io(src, "write -P 0x22 0 4M")
    node.ctl("fcmap", "create", "--source", "src", "--target", "full", "--name", "m2",
             "--copyrate", "0")
    started(node, "m2")
    node.ctl("fcmap", "stop", "m2")
    check(state(node, "m2") == "stopped", "stopped")
    r = qemu_io(full, "read 0 4K", ok=False)
    check(r.returncode != 0 or "error" in (r.stdout + r.stderr).lower(),
          f"a stopped mapping's target was readable: {r.stdout}")
    qemu_io(src, "read -P 0x22 0 4M")  # the source goes on

    # The I/O process restarts while copying: the new one reads the bitmap
    # back from the back end and the copy goes on; the target stays the
    # point in time, through the restart and to the end of the copy.
    started(node, "m2")
    h = connect(src)
    pit = h.pread(32 * MiB, 0)
    qemu_io(src, "write -P 0x55 0 1M")  # grains copied first, their bits durable
    qemu_io(full, "read -P 0x22 0 1M")
    os.kill(node.io_pid(), signal.SIGKILL)
    wait_until(lambda: node.ctl_json("daemon", "status")["restarts"] == 1 and
               node.ctl_json("daemon", "status")["io_serving"], "the I/O process back")
    wait_until(lambda: node.ctl_json("fcmap", "show", "m2").get("progress", {}).get("known"),
               "m2's bitmap read back")
    check(state(node, "m2") == "copying", "m2 still copying after the restart")
    qemu_io(full, "read -P 0x22 0 1M")
    qemu_io(src, "read -P 0x55 0 1M", "write -P 0x56 1M 1M")
    h = connect(src)
    h.pwrite(b"\x57" * MiB, 20 * MiB)
    g = connect(full)
    check(g.pread(32 * MiB, 0) == pit, "the target is not the point in time after the restart")
    node.ctl("fcmap", "set", "m2", "--copyrate", "100")
    wait_until(lambda: state(node, "m2") == "idle_or_copied", "m2 copied", timeout=60)
    check(g.pread(32 * MiB, 0) == pit, "the target is not the point in time once copied")
    g.shutdown()
    h.shutdown()
    stats = node.ctl_json("node", "stats")["flashcopy"]
    check(stats["bitmap_loads"] >= 1 and stats["bitmap_writes"] >= 1,
          f"the bitmap was not written and read back: {stats}")
    # Prepared and started again: a new point in time.
    node.ctl("fcmap", "set", "m2", "--copyrate", "0")
    started(node, "m2")
    qemu_io(src, "write -P 0x58 0 1M")
    qemu_io(full, "read -P 0x55 0 1M", "read -P 0x56 1M 1M")
    node.ctl("fcmap", "stop", "m2")
    node.ctl("fcmap", "delete", "m2")
    qemu_io(full, "read 0 4K")
    check(node.ctl_json("fcmap", "list") == [], "mappings left")

    # A restore: a clone of the source, copied to the end; the source
    # overwritten; the mapping back from the clone makes the source read as
    # the clone at once, while hosts go on writing it.
    node.ctl("fcmap", "create", "--source", "src", "--target", "full", "--name", "clone",
             "--copyrate", "150")
    node.ctl("fcmap", "start", "clone", "--prep", "--wait")
    h = connect(src)
    kept = h.pread(32 * MiB, 0)
    h.pwrite(b"\x61" * (4 * MiB), 0)
    node.ctl("fcmap", "create", "--source", "full", "--target", "src", "--name", "restore",
             "--copyrate", "0")
    node.ctl_fails("fcmap", "create", "--source", "full", "--target", "src",
                   contains="already the target")
    node.ctl("fcmap", "start", "restore", "--prep")
    wait_until(lambda: state(node, "restore") == "copying", "the restore copying")
    h = connect(src)
    check(h.pread(32 * MiB, 0) == kept, "the source does not read as the clone after the restore")
    h.pwrite(b"\x62" * 4096, 2 * MiB + 512 * 1024)  # part of a grain not restored yet
    expect = bytearray(kept)
    expect[2 * MiB + 512 * 1024:2 * MiB + 512 * 1024 + 4096] = b"\x62" * 4096
    check(h.pread(32 * MiB, 0) == bytes(expect), "a write to the source during the restore")
    node.ctl("fcmap", "set", "restore", "--copyrate", "150")
    node.ctl("fcmap", "show", "restore", "--wait")
    check(h.pread(32 * MiB, 0) == bytes(expect), "the source once the restore is copied")
    h.shutdown()
    node.ctl("fcmap", "delete", "restore")
    node.ctl("fcmap", "delete", "clone")
    return 0


if __name__ == "__main__":
    run(test)

"""qemu-io patterns across extent and mdisk boundaries, and nbdcopy of 64 MiB
of random data in and out over several connections, compared byte for byte."""
import filecmp
import os
import subprocess
import threading
import time

from harness import check, qemu_io, run

MiB = 1 << 20


def setup(node):
    for name in ("m0", "m1", "m2"):
        node.ctl("mdisk", "add", name, node.make_file(name + ".img", 80 * MiB))
    node.ctl("pool", "create", "p0", "--extent-size", "1M", "m0", "m1", "m2")
    node.ctl("vdisk", "create", "striped", "--pool", "p0", "--size", "96M")
    node.ctl("vdisk", "create", "seq", "--pool", "p0", "--size", "100M", "--policy", "sequential")


def test(make):
    node = make(cores=2).start(["--enable-chaos"])
    setup(node)
    show = node.ctl_json("vdisk", "show", "striped")
    check([e["mdisk"] for e in show["extents"][:4]] == ["m0", "m1", "m2", "m0"],
          f"striped vdisk is not round-robin: {show['extents'][:4]}")
    seq = node.ctl_json("vdisk", "show", "seq")
    check(seq["extents_per_mdisk"] == {"m0": 47, "m1": 47, "m2": 6}, f"sequential: {seq['extents_per_mdisk']}")

    url = node.url("striped")
    # Each write crosses an extent boundary, and with striping an mdisk boundary.
    writes = [(MiB - 4096, 8192, 0x11), (2 * MiB - 512, 1024, 0x22),
              (5 * MiB - 100, 200, 0x33), (10 * MiB - 3 * MiB // 2, 3 * MiB, 0x44),
              (96 * MiB - 4096, 4096, 0x55)]
    qemu_io(url, *[f"write -P {p:#x} {o} {n}" for o, n, p in writes])
    qemu_io(url, *[f"read -P {p:#x} {o} {n}" for o, n, p in writes])
    qemu_io(url, "read -P 0 0 4096", f"read -P 0 {20 * MiB} 65536")

    # The sequential vdisk fills what the striped one left on m0 (47 extents),
    # then m1: it crosses from m0 onto m1 at its 48th extent.
    qemu_io(node.url("seq"), f"write -P 0x66 {47 * MiB - 4096} 8192",
            f"read -P 0x66 {47 * MiB - 4096} 8192", f"write -z {50 * MiB} 1M",
            f"read -P 0 {50 * MiB} 1M")

    # nbdcopy: 64 MiB of random data in and out, 4 connections each way.
    src = os.path.join(node.data_dir, "random.bin")
    back = os.path.join(node.data_dir, "back.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(64 * MiB))
    subprocess.run(["nbdcopy", "--connections=4", src, url], check=True, timeout=300)
    subprocess.run(["nbdcopy", "--connections=4", url, back], check=True, timeout=300)
    with open(back, "r+b") as f:
        f.truncate(64 * MiB)
    check(filecmp.cmp(src, back, shallow=False), "nbdcopy round trip differs")
    qemu_io(url, "flush")

    # Online expand: new connections see the new size; old data stays,
    # the new extents read as zeroes and take writes.
    node.ctl("vdisk", "expand", "striped", "--size", "100M")
    info = subprocess.run(["nbdinfo", "--size", url], capture_output=True, text=True, check=True)
    check(int(info.stdout) == 100 * MiB, f"expanded size {info.stdout}")
    qemu_io(url, f"read -P 0x55 {96 * MiB - 4096} 4096", f"read -P 0 {96 * MiB} 4M",
            f"write -P 0x77 {99 * MiB} 1M", f"read -P 0x77 {99 * MiB} 1M")

    # Delete frees the extents; a new vdisk on them reads zeroes, not old data.
    free_before = node.ctl_json("pool", "list")[0]["extents_free"]
    node.ctl("vdisk", "delete", "seq")
    check(node.ctl_json("pool", "list")[0]["extents_free"] == free_before + 100, "extents not freed")
    node.ctl("vdisk", "create", "fresh", "--pool", "p0", "--size", "100M", "--policy", "sequential")
    qemu_io(node.url("fresh"), f"read -P 0 {47 * MiB - 4096} 8192")
    r = subprocess.run(["nbdinfo", node.url("seq")], capture_output=True, text=True)
    check(r.returncode != 0, "a deleted vdisk is still exported")
    check_cache(node)
    check_slow_mdisk(node)


def check_slow_mdisk(node):
    """A stalled mdisk holds up only the requests that go to it."""
    for name in ("slow", "fast"):
        node.ctl("mdisk", "add", name, node.make_file(name + ".img", 40 * MiB))
        node.ctl("pool", "create", "p" + name, name)
        node.ctl("vdisk", "create", "v" + name, "--pool", "p" + name, "--size", "16M")
    slow_id = {m["name"]: m["id"] for m in node.ctl_json("mdisk", "list")}["slow"]
    # The fault's target is an index into the node's mdisks: find the one
    # that names "slow" (a 1 ms stall each try).
    target = next((t for t in range(8) if node.ctl_json(
        "chaos", "inject", "mdisk-stall", "--duration", "1", "--target", str(t))["target"]
        == f"mdisk {slow_id}"), None)
    check(target is not None, "no chaos target names the slow mdisk")
    node.ctl("chaos", "inject", "mdisk-stall", "--duration", "6000", "--target", str(target))
    stalled = threading.Thread(target=qemu_io, args=(node.url("vslow"), f"read -P 0 {4 * MiB} 64k"))
    t0 = time.monotonic()
    stalled.start()
    qemu_io(node.url("vfast"), "write -P 0x5f 0 1M", "read -P 0x5f 0 1M", f"read -P 0 {4 * MiB} 1M")
    took = time.monotonic() - t0
    check(stalled.is_alive(), "the read of the stalled mdisk did not wait for the stall")
    check(took < 5, f"requests to another mdisk took {took:.1f} s during the stall")
    stalled.join(timeout=60)
    check(not stalled.is_alive(), "the stalled read never completed")
    check(time.monotonic() - t0 >= 5, "the stalled read completed before its stall ended")


def check_cache(node):
    """A standalone node caches reads and writes through; what it serves from
    cache is what the back end holds, across connections."""
    shown = node.ctl_json("node", "show")
    check(shown["mode"] == "write-through" and "no partner" in shown["why"], f"node show: {shown}")
    check(shown["size_bytes"] == 128 * MiB, f"default cache size: {shown}")
    url = node.url("fresh")
    # 2 MiB in requests under the streaming size (256 KiB), which are kept.
    qemu_io(url, *[f"write -P 0x3c {8 * MiB + i * 128 * 1024} 128k" for i in range(16)])
    before = node.ctl_json("vdisk", "show", "fresh")["cache"]
    # Another connection reads what the first wrote: from cache, whole.
    qemu_io(url, f"read -P 0x3c {8 * MiB} 2M", f"read -P 0x3c {8 * MiB + 512} 4096")
    after = node.ctl_json("vdisk", "show", "fresh")["cache"]
    check(after["read_hits"] >= before["read_hits"] + 2, f"no cache hits: {before} -> {after}")
    check(after["hit_ratio"] > 0 and after["dirty_bytes"] == 0, f"vdisk cache: {after}")
    # A partial overwrite and zeroing are seen by the next reader.
    qemu_io(url, f"write -P 0x3d {8 * MiB + 100} 200", f"write -z {9 * MiB} 4096")
    qemu_io(url, f"read -P 0x3c {8 * MiB} 100", f"read -P 0x3d {8 * MiB + 100} 200",
            f"read -P 0x3c {8 * MiB + 300} {MiB - 300}", f"read -P 0 {9 * MiB} 4096",
            f"read -P 0x3c {9 * MiB + 4096} {MiB - 4096}")
    out = node.ctl("vdisk", "show", "fresh").stdout
    check("cache mode: write-through" in out and "hits" in out, f"vdisk show:\n{out}")


run(test)

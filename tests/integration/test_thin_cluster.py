"""A thin vdisk in a two-node I/O group: a verifying writer (first writes
that allocate grains, and overwrites the mirrored cache writes back) on
both nodes; the owner's I/O process is SIGKILLed; the partner takes the
vdisk over, reads the map from disk and goes on allocating; every
acknowledged write reads back through both nodes, and `vdisk check` finds
the map clean (no grain mapped twice, none leaked). Then a move to the
other node with dirty data on the owner: the handover's destage goes
through the old owner's thin layer. Block status through the node that
does not own it shows the owner's holes."""
import json
import os
import signal
import subprocess
from errno import EIO

from cluster_harness import Cluster
from harness import check, io_restarted, qemu_io, run, wait_until
from verifier import VerifyingWriter, check_writes


def checked(c, name):
    """`vdisk check` on whichever node executes the vdisk now."""
    for i in (1, 2):
        result = c[i].ctl_json("vdisk", "check", name)
        if result["checked"]:
            return result
    check(False, f"no node checked {name}")


def test(make):
    c = Cluster(make, 3, extra=["--cache-size", "4M", "--watchdog-ms", "1000"])
    c.form()
    n1, n2 = c[1], c[2]
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 96 << 20))
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("iogrp", "create", "g0", "1", "2")
    n1.ctl("vdisk", "create", "v", "--pool", "p", "--size", "64M", "--iogrp", "g0", "--node", "1",
           "--thin", "--grain", "32K", "--rsize", "8M")
    wait_until(lambda: n1.ctl_json("vdisk", "show", "v")["cache"]["mode"] == "write-back",
               "write-back on node 1")
    blocks = 8192  # 32 MiB of the 64 MiB vdisk
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", blocks, seed=11, errors=(EIO,))
    writer.move_to(0, blocks // 2)
    writer.start()
    wait_until(lambda: writer.writes_acked >= 2000, "2000 writes")
    used = n1.ctl_json("vdisk", "show", "v")["thin_usage"]["used_capacity"]
    check(0 < used < 64 << 20, f"used capacity on the owner: {used}")
    os.kill(n1.io_pid(), signal.SIGKILL)
    writer.move_to(blocks // 2, blocks // 2)  # new grains, allocated by the partner
    acked = writer.writes_acked
    wait_until(lambda: writer.writes_acked >= acked + 1000, "writes through the partner",
               timeout=60)
    io_restarted(n1, 1)
    c.wait_serving([1, 2, 3], 1, timeout=30)
    writer.stop()
    check_writes(writer, [n1, n2], "a thin vdisk's owner killed under writes")
    result = checked(c, "v")
    check(result["clean"], f"vdisk check after the failover: {result}")
    check(result["mapped_grains"] > 0, f"no grain mapped: {result}")

    # A move with dirty data on the old owner: a rewrite of allocated grains
    # is written back; node 1 destages it through its thin layer for the
    # handover, and node 2 owns the vdisk after it.
    def cache_of(node):
        return node.ctl_json("vdisk", "show", "v")["cache"]

    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "node 1 to own the vdisk again")
    qemu_io(n2.url("v"), "write -P 0x71 40M 1M")  # allocates (through the cache)
    qemu_io(n2.url("v"), "write -P 0x72 40M 1M")  # written back
    check(cache_of(n1)["dirty_bytes"] > 0, f"nothing dirty before the move: {cache_of(n1)}")
    n1.ctl("vdisk", "move", "v", "--node", "2")
    wait_until(lambda: cache_of(n2)["mode"] == "write-back", "node 2 to own the moved vdisk")
    qemu_io(n1.url("v"), "read -P 0x72 40M 1M", "write -P 0x73 50M 1M")
    qemu_io(n2.url("v"), "read -P 0x72 40M 1M", "read -P 0x73 50M 1M")
    result = checked(c, "v")
    check(result["clean"], f"vdisk check after the move: {result}")

    # Block status through the node that does not own the vdisk is asked of
    # the owner (on the data channel): both nodes show the same holes.
    def data_map(node):
        r = subprocess.run(["nbdinfo", "--map", "--json", node.url("v")], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, f"nbdinfo --map on node {node.node_id}: {r.stderr}")
        return [(m["offset"], m["length"], m["type"]) for m in json.loads(r.stdout)]

    owner_map, other_map = data_map(n2), data_map(n1)
    check(any(t == 3 for _, _, t in owner_map), f"no hole on the owner: {owner_map}")
    check(other_map == owner_map, f"block status through node 1: {other_map}, owner's: {owner_map}")
    return 0


if __name__ == "__main__":
    run(test)

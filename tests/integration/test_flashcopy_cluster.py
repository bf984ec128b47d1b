"""A point-in-time copy in a two-node I/O group (node 3 keeps a majority).

The source is written by a verifying writer through both nodes while its
background copy runs, and the owner's I/O process is SIGKILLed mid-copy:
the partner takes source, target and bitmap over, reads the bitmap back
from the back end and the copy goes on (and once more when the owner comes
back and takes them again); at the end the target equals the point in
time byte for byte and no acknowledged source write is lost. Then a power
loss of both nodes of the group during another copy (both sveds
SIGKILLed, their NVRAM files kept, both started again): the copy goes on
to the same end."""
import hashlib
import os
import signal
from errno import EIO

from cluster_harness import Cluster
from harness import check, io_restarted, qemu_io, run, wait_until
from verifier import VerifyingWriter, check_writes, read_all

MiB = 1 << 20
BLOCKS = 16384  # 4 KiB blocks: the whole 64 MiB source
WRITER_BLOCKS = 2048  # the verifying writer's: its first 8 MiB (zeros before it)


def digest(node, vdisk):
    return hashlib.sha256(b"".join(read_all(node.nbd_port, vdisk, BLOCKS))).hexdigest()


def show(node, name="m"):
    return node.ctl_json("fcmap", "show", name)


def percent(node):
    return show(node).get("progress", {}).get("percent", 0)


def start_copy(node):
    node.ctl("fcmap", "prepare", "m")
    wait_until(lambda: show(node)["state"] == "prepared", "m prepared", timeout=30)
    node.ctl("fcmap", "start", "m")
    wait_until(lambda: show(node)["state"] == "copying", "m copying", timeout=30)


def test(make):
    c = Cluster(make, 3, extra=["--cache-size", "4M", "--watchdog-ms", "1000"])
    c.form()
    n1, n2 = c[1], c[2]
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 256 * MiB))
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("iogrp", "create", "g0", "1", "2")
    for name in ("v", "t"):
        n1.ctl("vdisk", "create", name, "--pool", "p", "--size", "64M", "--iogrp", "g0",
               "--node", "1")
    wait_until(lambda: n1.ctl_json("vdisk", "show", "v")["cache"]["mode"] == "write-back",
               "write-back on node 1")
    # (One 56 MiB write, 32 MiB requests: more than the 4 MiB cache holds,
    # written through.)
    qemu_io(n1.url("v"), "write -P 0x3c 8M 56M")
    n1.ctl("fcmap", "create", "--source", "v", "--target", "t", "--name", "m", "--copyrate", "0",
           "--grain", "64K")
    check(show(n1)["bitmap_bytes"] > 0, "the mapping has no bitmap on the back end")
    check([v["name"] for v in n1.ctl_json("vdisk", "list")] == ["v", "t"],
          "the bitmap's vdisk is listed")

    # Owner failover mid-copy, under writes through both nodes: no request
    # fails (those that come while the cluster changes wait for it).
    start_copy(n1)
    pit = digest(n1, "v")  # nothing written since the start
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", WRITER_BLOCKS, seed=5)
    writer.start()
    wait_until(lambda: writer.writes_acked >= 1000, "1000 writes", timeout=60)
    n1.ctl("fcmap", "set", "m", "--copyrate", "70")  # 8 MiB/s: the 64 MiB in about 8 s
    wait_until(lambda: percent(n1) >= 15, "15% copied", timeout=60)
    os.kill(n1.io_pid(), signal.SIGKILL)
    acked = writer.writes_acked
    wait_until(lambda: writer.writes_acked >= acked + 500, "writes through the partner",
               timeout=60)
    io_restarted(n1, 1)
    c.wait_serving([1, 2, 3], 1, timeout=30)
    wait_until(lambda: show(n2)["state"] == "idle_or_copied", "the copy to end", timeout=120)
    writer.stop()
    check_writes(writer, [n1, n2], "a copying source's owner killed under writes")
    check(digest(n2, "t") == pit, "the target is not the point in time after the failover")
    check(digest(n1, "t") == pit, "the target read through node 1 is not the point in time")
    loads = sum(n.ctl_json("node", "stats")["flashcopy"]["bitmap_loads"] for n in (n1, n2))
    check(loads >= 1, "no node read the bitmap back")
    print(f"failover mid-copy: {writer.writes_acked} source writes kept, the target exact, "
          f"{loads} bitmap reads")

    # A power loss of both nodes of the group mid-copy.
    n1.ctl("fcmap", "set", "m", "--copyrate", "0")
    start_copy(n1)
    pit = digest(n1, "v")
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", WRITER_BLOCKS, seed=6, after=writer,
                             errors=(EIO,))
    writer.start()
    wait_until(lambda: writer.writes_acked >= 1000, "1000 writes", timeout=60)
    n1.ctl("fcmap", "set", "m", "--copyrate", "70")
    wait_until(lambda: percent(n1) >= 15, "15% copied", timeout=60)
    n1.kill()
    n2.kill()
    c.start(1)
    c.start(2)
    wait_until(lambda: all(c.status(i)["quorum"] and c.status(i)["members"] == [1, 2, 3]
                           for i in (1, 2, 3)), "the cluster whole again", timeout=60)
    wait_until(lambda: show(n2)["state"] == "idle_or_copied", "the copy to end", timeout=120)
    writer.stop()
    check_writes(writer, [n1, n2], "both nodes of a copying source's group killed")
    check(digest(n1, "t") == pit, "the target is not the point in time after the power loss")
    n1.ctl("fcmap", "delete", "m")
    check(n1.ctl_json("fcmap", "list") == [], "the mapping is gone")
    return 0


if __name__ == "__main__":
    run(test)

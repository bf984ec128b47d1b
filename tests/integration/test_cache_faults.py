"""Fault tests of the mirrored write-back cache, with real processes: a
verifying writer (tests/integration/verifier.py) writes a vdisk of a
two-node I/O group (nodes 1 and 2; node 3 keeps a majority) while nodes are
SIGKILLed, and after each fault every acknowledged write reads back exactly,
from the surviving node and again once the killed node has returned:

  1. the owner dies in the middle of writes and destage (the writer, on the
     owner, reconnects to the partner and rides through the takeover);
  2. the partner dies (the writer, on node 3, rides through), comes back,
     and the owner dies in the middle of the resync that follows (its mdisk
     stalled by a chaos fault, so the resync cannot be over): the group is
     offline until the owner returns with its copies;
  3. both nodes die one after the other, the partner first, after the owner
     began writing through; both return;
  4. (four nodes) a vdisk moves to another I/O group and its old owner dies
     before handing it over: the old group's other node hands it over."""
import time

from cluster_harness import Cluster
from harness import check, run, wait_until
# A request failed, unacknowledged, when its vdisk had no owner for three
# leases (2 and 3: the one node whose copies count died): the host retries.
EIO = 5
from verifier import VerifyingWriter, check_writes

BLOCKS = 8192  # the 32 MiB vdisk; the cache is 4 MiB per node
HALF = BLOCKS // 2


def cache_of(node, vdisk="v"):
    return node.ctl_json("vdisk", "show", vdisk)["cache"]


def write_for(writer, seconds, minimum):
    began, acked = time.monotonic(), writer.writes_acked
    wait_until(lambda: writer.writes_acked - acked >= minimum and
               time.monotonic() - began >= seconds, f"{minimum} writes", timeout=60)


def test(make):
    c = Cluster(make, 3, extra=["--cache-size", "4M", "--enable-chaos"])
    c.form()
    n1, n2, n3 = c[1], c[2], c[3]
    c.group_vdisk("v", 32, 128)

    # 1. The owner dies in the middle of writes (and of destage: the cache
    # is small, destage never stops).
    # The writer is connected to the owner itself: when it dies, the writer
    # reconnects to the other node of the group, as a host fails over. No
    # request fails: those that come while node 2 forms the generation
    # without node 1 wait for it (forward_facility.hpp).
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", BLOCKS, seed=1)
    writer.move_to(0, HALF)
    writer.start()
    write_for(writer, 1.0, 2000)
    before = n1.ctl_json("node", "show")
    print(f"node 1 before the kill: {before}")
    check(before["dirty_bytes"] > 0 and before["destaged_bytes"] > 0,
          f"node 1 should hold dirty blocks and be destaging: {before}")
    n1.kill()
    writer.move_to(HALF, HALF)  # what follows must not hide a loss
    c.wait_serving([2, 3], 2)
    write_for(writer, 1.0, 1000)  # through the takeover, on node 2
    writer.stop()
    shown = cache_of(n2)
    check(shown["mode"] == "write-through" and "node 1" in shown["why"], f"node 2: {shown}")
    check_writes(writer, [n2, n3], "owner killed in the middle of writes")
    # Newer data over what node 1 still holds in its non-volatile memory:
    # when it returns, its copies must not come back.
    # No fault while this one writes: no request may fail.
    writer = VerifyingWriter([n2.nbd_port], "v", BLOCKS, seed=4, after=writer)
    writer.move_to(0, HALF)
    writer.start()
    write_for(writer, 0.5, 2000)
    writer.stop()
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "write-back again after the resync",
               timeout=30)
    check_writes(writer, [n1, n2], "after the owner returned")

    # 2. The partner dies in the middle of writes (the writer is on node 3),
    # returns, and the owner dies during the resync. Node 1's mdisk stalls
    # (an explicit chaos fault) just before the partner dies, so that node 1
    # cannot destage what it holds: the resync is still under way, for
    # certain, when node 1 is killed.
    writer = VerifyingWriter([n3.nbd_port], "v", BLOCKS, seed=2, after=writer, errors=(EIO,))
    writer.move_to(0, HALF)
    writer.start()
    write_for(writer, 1.0, 2000)
    n1.ctl("chaos", "inject", "mdisk-stall", "--duration", "30000")
    n2.kill()
    writer.move_to(HALF, HALF)
    c.wait_serving([1, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-through", "node 1 alone")
    c.start(2)
    c.wait_serving([1, 2, 3], 1)
    shown = cache_of(n1)
    check(shown["mode"] == "write-through" and shown["dirty_bytes"] > 0,
          f"node 1 should still be resynchronising: {shown}")
    print(f"node 1 killed in its resync with {shown['dirty_bytes']} dirty bytes")
    n1.kill()  # the only node whose copies count, in the middle of its resync
    writer.stop()
    c.wait_serving([2, 3], 2)
    check("offline" in cache_of(n2)["why"] or "node 1" in cache_of(n2)["why"],
          f"the group should wait for node 1: {cache_of(n2)}")
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "write-back after both returned",
               timeout=30)
    check_writes(writer, [n1, n3], "partner killed, then the owner during the resync")

    # 3. Both die, the partner first, after the owner began writing through.
    writer = VerifyingWriter([n3.nbd_port], "v", BLOCKS, seed=3, after=writer, errors=(EIO,))
    writer.move_to(0, HALF)
    writer.start()
    write_for(writer, 0.5, 1000)
    n2.kill()
    writer.move_to(HALF, HALF)
    c.wait_serving([1, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-through", "node 1 writing through")
    write_for(writer, 0.5, 200)
    n1.kill()
    writer.stop()
    c.start(2)
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "write-back after both returned",
               timeout=30)
    check_writes(writer, [n1, n2, n3], "both killed, the partner first")



def cross_group_move(make):
    """4. A vdisk moves to another I/O group, and its old owner dies before it
    has handed the vdisk over: the old group's other node destages its
    copies and hands it over instead. Node 1's mdisk is stalled first (a
    chaos fault), so that node 1 certainly still holds dirty blocks."""
    c = Cluster(make, 4, extra=["--cache-size", "4M", "--enable-chaos"])
    c.form()
    n1, n2, n3, n4 = c[1], c[2], c[3], c[4]
    c.group_vdisk("v", 16, 64)
    n1.ctl("iogrp", "create", "g1", "3", "4")
    blocks = 4096
    # A stalled mdisk only pauses requests: none may fail.
    writer = VerifyingWriter([n1.nbd_port], "v", blocks, seed=9)
    writer.start()
    write_for(writer, 0.5, 1000)
    n1.ctl("chaos", "inject", "mdisk-stall", "--duration", "60000")
    write_for(writer, 0.3, 200)  # dirty blocks node 1 cannot destage
    writer.stop()
    held = cache_of(n1)["dirty_bytes"]
    check(held > 0, f"node 1 should hold dirty blocks: {cache_of(n1)}")
    moved = n2.ctl_json("vdisk", "move", "v", "--iogrp", "g1", "--node", "3")
    check(moved["iogrp"] == "g1", f"vdisk move: {moved}")
    n1.kill()
    c.wait_serving([2, 3, 4], 2)
    wait_until(lambda: "handover of vdisk v for node 1" in n2.read_log(),
               "node 2 to hand the vdisk over for node 1", timeout=30)
    check_writes(writer, [n3, n4, n2], f"old owner killed with {held} dirty bytes during a "
                 "cross-group move")


def test_all(make):
    test(make)
    cross_group_move(make)


run(test_all)

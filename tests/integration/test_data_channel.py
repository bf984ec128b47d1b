"""The mirrored cache's data channel (docs/cache.md) under faults, with real
processes: a verifying writer (verifier.py) writes a vdisk of a two-node
I/O group on its owner (node 1) while the chaos monkey cuts node 1's data
channel to its partner again and again, mid-stream. Copies in flight on a
cut connection fail and are sent again (through the interconnect actor
while the channel is down, on the channel once it is back). Then the owner
is SIGKILLed just after one more cut: every acknowledged write must read
back from the partner, which can only hold it if its copy arrived."""
import json
import os
import socket
import struct

from cluster_harness import Cluster
from harness import check, run, wait_until
from verifier import VerifyingWriter, check_writes

BLOCKS = 8192  # the 32 MiB vdisk


def link_of(node):
    return json.loads(node.ctl("shell", "-c", "inspect cache/0").stdout)["state"]["link"]


def test(make):
    # A cache larger than what is written: nothing is destaged before the
    # kill, so the partner's copies are the only second home of the writes.
    c = Cluster(make, 3, extra=["--cache-size", "64M", "--enable-chaos"])
    c.form()
    n1, n2, n3 = c[1], c[2], c[3]
    c.group_vdisk("v", 32, 128)
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", BLOCKS, seed=7)
    writer.start()
    wait_until(lambda: link_of(n1)["copies_sent"] > 0, "copies on the data channel")

    # Hostile callers on node 2's data port: garbage, and a hello from a
    # node with another number of cores followed by garbage. Neither may
    # harm node 2 (no restart) or the copies already flowing.
    port = link_of(n1)["peers"][0]["port"]
    before = n2.ctl_json("daemon", "status")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(os.urandom(4096))
    hello = struct.pack("<IBBHIIIIQQiI", 0x43455653, 1, 1, 0, 0, 9, 0, 99, 1, 0, 0, 0)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(hello + os.urandom(4096))
    sent = link_of(n1)["copies_sent"]
    wait_until(lambda: link_of(n1)["copies_sent"] > sent + 10, "copies after the hostile callers")

    for cut in range(4):
        cuts = link_of(n1)["disconnects"]
        hit = n1.ctl_json("chaos", "inject", "channel-cut", "--duration", "700", "--target", "0")
        check("data channel to node 2" in json.dumps(hit), f"the cut: {hit}")
        wait_until(lambda: link_of(n1)["disconnects"] > cuts, f"cut {cut + 1} to close the channel")
        acked = writer.writes_acked
        wait_until(lambda: writer.writes_acked > acked + 300, "writes during the cut")
        # After the cut the channel is back and carries the copies again.
        sent = link_of(n1)["copies_sent"]
        wait_until(lambda: link_of(n1)["copies_sent"] > sent + 10,
                   f"the data channel back after cut {cut + 1}", timeout=30)
    link = link_of(n1)
    print(f"node 1's link after the cuts: {link}")
    check(link["disconnects"] >= 4 and link["copies_fallback"] > 0,
          f"the cuts did not cut the channel: {link}")

    # One more cut, at the partner's end this time (what node 1 sent and
    # node 2 had not read yet is lost with the connection), and the owner
    # dies right after it, while what was written around the cut is still
    # only in the two caches (younger than the destage's one second): the
    # copies the cut connection failed must have been sent again, or these
    # writes are lost.
    cuts = link["disconnects"]
    hit = n2.ctl_json("chaos", "inject", "channel-cut", "--duration", "700", "--target", "0")
    check("data channel to node 1" in json.dumps(hit), f"the cut on node 2: {hit}")
    wait_until(lambda: link_of(n1)["disconnects"] > cuts, "the last cut to close the channel")
    acked = writer.writes_acked
    wait_until(lambda: writer.writes_acked > acked + 100, "writes after the last cut")
    after = n2.ctl_json("daemon", "status")
    check(after["restarts"] == before["restarts"] and after["io_pid"] == before["io_pid"],
          f"node 2 restarted: {before} -> {after}")
    n1.kill()
    c.wait_serving([2, 3], 2)
    writer.stop()
    check_writes(writer, [n2, n3], "owner killed after its data channel was cut four times")
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    check_writes(writer, [n1, n2], "after the owner returned")


run(test)

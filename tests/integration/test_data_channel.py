"""The mirrored cache's data channel (docs/cache.md) under faults, with real
processes: a verifying writer (verifier.py) writes a vdisk of a two-node
I/O group on its owner (node 1) while the chaos monkey cuts node 1's data
channel to its partner again and again, mid-stream. Copies in flight on a
cut connection fail and are sent again (through the interconnect actor
while the channel is down, on the channel once it is back). Then the owner
is SIGKILLed just after one more cut: every acknowledged write must read
back from the partner, which can only hold it if its copy arrived. The
owner returns while the writers go on, the channel is cut during the
resync and after it, and the owner is killed again.

A second verifying writer writes another vdisk owned by node 1 through
node 2, which forwards its requests to node 1 on the same channel: the
cuts fail those in flight, which node 2 sends again through the
interconnect actor; none may fail at the host or be lost."""
import json
import os
import socket
import struct
import time

from cluster_harness import Cluster
from harness import check, run, wait_until
from verifier import VerifyingWriter, check_writes

BLOCKS = 8192  # the 32 MiB vdisk


def link_of(node):
    return json.loads(node.ctl("shell", "-c", "inspect cache/0").stdout)["state"]["link"]


def forward_of(node):
    return json.loads(node.ctl("shell", "-c", "inspect forward/0").stdout)["state"]


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
    # Sealed: every frame carries a tag under the connection's own keys.
    peers = link_of(n1)["peers"]
    check(any(p["up"] for p in peers) and all(p["sealed"] for p in peers if p["up"]),
          f"node 1's data channels are not sealed: {peers}")
    n1.ctl("vdisk", "create", "f", "--pool", "p", "--size", "16M", "--iogrp", "g0", "--node", "1")
    # Through node 2 alone (node 3 would forward too, on its own channel).
    wait_until(lambda: n2.ctl("vdisk", "show", "f", ok=False).returncode == 0, "f on node 2")
    forwarded = VerifyingWriter([n2.nbd_port], "f", 4096, seed=8)
    forwarded.start()
    wait_until(lambda: forward_of(n2)["on_channel"] > 100,
               lambda: f"requests forwarded on the data channel: {forward_of(n2)}, "
                       f"{forwarded.writes_acked} acknowledged", timeout=30)
    # Node 2 is the owner's partner: the owner's copies of those writes go
    # back by reference (node 2 keeps them from the data it forwarded), and
    # node 2 acknowledges each write once it holds that copy.
    wait_until(lambda: link_of(n1)["copies_by_reference"] > 50
               and forward_of(n2)["channel"]["held_early"] > 50,
               lambda: f"copies by reference: node 1 {link_of(n1)}, node 2 {forward_of(n2)}",
               timeout=30)

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
    fwd = forward_of(n2)
    print(f"node 2's forwarding after the cuts: {fwd}")
    check(fwd["channel"]["not_sent"] > 0 and fwd["on_channel"] > 100,
          f"the cuts did not send forwarded requests the other way: {fwd}")

    # The partner stops reading its channel for three seconds (channel-stall):
    # the owner's copies and node 2's forwarded requests go unanswered, so
    # the writers wait (nothing fails, nothing times out), memory stays
    # bounded, and all resumes when the partner reads again.
    rss = n1.rss_bytes()
    hit = n2.ctl_json("chaos", "inject", "channel-stall", "--duration", "3000", "--target", "0")
    check("data channel to node 1" in json.dumps(hit), f"the stall on node 2: {hit}")
    acked, acked_f = writer.writes_acked, forwarded.writes_acked
    time.sleep(1)  # well inside the stall, whose end is what is waited for below
    stalled, stalled_f = writer.writes_acked - acked, forwarded.writes_acked - acked_f
    print(f"writes acknowledged in 1 s of the stall: {stalled}, forwarded {stalled_f}")
    check(stalled < 100 and stalled_f < 100,
          f"writes went on while the partner did not read: {stalled}, forwarded {stalled_f}")
    check(n1.rss_bytes() < rss + (64 << 20), f"node 1 grew from {rss} to {n1.rss_bytes()} bytes")
    wait_until(lambda: writer.writes_acked > acked + 300 and forwarded.writes_acked > acked_f + 300,
               "writes after the stall")
    check(writer.errors_seen == {} and forwarded.errors_seen == {},
          f"errors: {writer.errors_seen} {forwarded.errors_seen}")

    # Node 1's frames to node 2 leave 100 ms late for 1.5 s (channel-delay):
    # slower, nothing fails.
    hit = n1.ctl_json("chaos", "inject", "channel-delay", "--intensity", "100", "--duration",
                      "1500", "--target", "0")
    check("data channel to node 2" in json.dumps(hit), f"the delay on node 1: {hit}")
    acked, acked_f = writer.writes_acked, forwarded.writes_acked
    wait_until(lambda: writer.writes_acked > acked + 100 and forwarded.writes_acked > acked_f + 100,
               "writes through the delay")
    check(writer.errors_seen == {} and forwarded.errors_seen == {},
          f"errors: {writer.errors_seen} {forwarded.errors_seen}")

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
    # Cuts, delays and stalls never made a frame fail its tag.
    check(link_of(n1)["tampered"] == 0 and link_of(n2)["tampered"] == 0,
          f"frames failed their tags: {link_of(n1)} {link_of(n2)}")
    n1.kill()
    c.wait_serving([2, 3], 2)
    writer.stop()
    forwarded.stop()
    check_writes(writer, [n2, n3], "owner killed after its data channel was cut four times")
    check_writes(forwarded, [n2, n3], "forwarded through node 2 while the channel was cut",
                 export="f")

    # The resync: node 2 runs the group alone; once node 1 is back, node 2
    # destages and the group writes back again, the vdisks back on node 1.
    # Writers (continuing the records above) go on through node 2 from the
    # moment node 1 starts, while the channel between the two is cut again
    # and again; then node 1 dies once more, and everything acknowledged,
    # before and since, must be on node 2.
    # No errors at all: node 1's return makes a new generation, which
    # closes node 2's gate for a moment, and the host requests that come
    # meanwhile wait for it at the top of node 2's stack (they failed with
    # EIO before: forward_facility.hpp).
    writer = VerifyingWriter([n2.nbd_port], "v", BLOCKS, seed=9, after=writer)
    forwarded = VerifyingWriter([n2.nbd_port], "f", 4096, seed=10, after=forwarded)
    writer.start()
    forwarded.start()
    c.start(1)

    def owner_writes_back():
        r = n1.ctl("--json", "vdisk", "show", "v", ok=False)
        return r.returncode == 0 and json.loads(r.stdout)["cache"]["mode"] == "write-back"

    cuts = 0
    while not owner_writes_back():
        check(cuts < 40, "the group did not write back again within 40 cuts")
        n2.ctl_json("chaos", "inject", "channel-cut", "--duration", "300", "--target", "0")
        cuts += 1
        acked = writer.writes_acked
        wait_until(lambda: writer.writes_acked > acked + 20,
                   lambda: f"writes during cut {cuts} of the resync (violations "
                           f"{writer.violations[:3]} {forwarded.violations[:3]})")
    print(f"the group wrote back again after {cuts} cuts during the resync")
    held = forward_of(n2)
    print(f"node 2 held {held['held']} host requests while it was between generations "
          f"({held['held_failed']} failed)")
    # (Node 1's return made a new generation, which held some: if none
    # was, this phase tested nothing new.)
    check(held["held"] > 0 and held["held_failed"] == 0, f"held requests: {held}")
    check("host requests waited up to" in n2.read_log(), "node 2 did not log what it held")
    for cut in range(2):
        n2.ctl_json("chaos", "inject", "channel-cut", "--duration", "300", "--target", "0")
        acked, acked_f = writer.writes_acked, forwarded.writes_acked
        wait_until(lambda: writer.writes_acked > acked + 200 and forwarded.writes_acked > acked_f + 200,
                   f"writes during cut {cut + 1} after the resync")
    sent = link_of(n1)["copies_sent"]
    wait_until(lambda: link_of(n1)["copies_sent"] > sent + 10, "copies on the channel again")
    n1.kill()
    c.wait_serving([2, 3], 2)
    writer.stop()
    forwarded.stop()
    check_writes(writer, [n2, n3], "owner killed after cuts during and after the resync")
    check_writes(forwarded, [n2, n3], "forwarded, owner killed after the resync", export="f")
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    check_writes(writer, [n1, n2], "after the owner returned")
    check_writes(forwarded, [n1, n3], "forwarded, after the owner returned", export="f")


run(test)

"""A cluster of real sved processes on 127.0.0.1: it forms from admin
commands, serves a vdisk created on node 1 from node 3, elects a new boss
when the boss is SIGKILLed, stalls a lone survivor (I/O and configuration
refused at once, with a clear error) until a second node returns, loses no
committed command to a SIGKILL in the middle of a stream of them, and a
two-node cluster survives the loss of either node through a quorum device."""
import os
import tempfile
import threading
import time

from cluster_harness import Cluster
from harness import RawNbd, check, qemu_io, run, wait_until

MiB = 1 << 20
EIO = 5


def three_nodes(make):
    c = Cluster(make, 3)
    c.form()
    n1, n2, n3 = c[1], c[2], c[3]
    nodes = n1.ctl_json("node", "list")
    check([n["state"] for n in nodes] == ["online"] * 3, f"node list: {nodes}")
    check(c.status(3)["members"] == [1, 2, 3], "members as seen by node 3")

    # Configuration on node 1 is cluster state: node 3 serves the vdisk.
    shared = n1.make_file("shared.img", 256 * MiB)
    n1.ctl("mdisk", "add", "m0", shared)
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("vdisk", "create", "v", "--pool", "p", "--size", "32M")
    wait_until(lambda: [v["name"] for v in n3.ctl_json("vdisk", "list")] == ["v"],
               "node 3 to list the vdisk")
    qemu_io(n1.url("v"), "write -P 0x11 0 1M")
    qemu_io(n3.url("v"), "read -P 0x11 0 1M", "write -P 0x33 1M 1M")
    qemu_io(n2.url("v"), "read -P 0x33 1M 1M")
    c.wait_same_committed([1, 2, 3])
    for what in ("mdisk", "pool", "vdisk"):
        lists = [n.ctl_json(what, "list") for n in (n1, n2, n3)]
        check(lists[0] == lists[1] == lists[2], f"{what} lists differ: {lists}")

    # I/O groups pair nodes; vdisks go to one, preferring one of its nodes.
    n3.ctl("iogrp", "create", "io0", "1", "2")
    n3.ctl_fails("iogrp", "create", "io1", "2", "3", contains="already in I/O group 'io0'")
    n3.ctl_fails("iogrp", "create", "io1", "3", "9", contains="not a node of this cluster")
    n3.ctl_fails("iogrp", "create", "io1", "3", "3", contains="two different nodes")
    groups = n1.ctl_json("iogrp", "list")
    check([(g["name"], g["nodes"]) for g in groups] == [("io0", [1, 2])], f"iogrps: {groups}")
    n2.ctl("vdisk", "create", "g1", "--pool", "p", "--size", "8M", "--iogrp", "io0", "--node", "2")
    n2.ctl("vdisk", "create", "g2", "--pool", "p", "--size", "8M")  # the only group, the less busy node
    n1.ctl_fails("vdisk", "create", "g3", "--pool", "p", "--size", "8M", "--node", "3",
                 contains="not in I/O group 'io0'")
    shown = {v: n3.ctl_json("vdisk", "show", v) for v in ("v", "g1", "g2")}
    check([(shown[v]["iogrp"], shown[v]["preferred_node"]) for v in ("v", "g1", "g2")] ==
          [("", 0), ("io0", 2), ("io0", 1)], f"placement: {shown}")
    moved = n1.ctl_json("vdisk", "move", "g1", "--node", "1")
    check(moved["preferred_node"] == 1, f"vdisk move: {moved}")
    n1.ctl_fails("iogrp", "delete", "io0", contains="serves vdisk")
    n1.ctl_fails("node", "remove", "2", contains="is in I/O group 'io0'")
    qemu_io(n3.url("g1"), "write -P 0x22 0 1M")  # every node still serves it
    qemu_io(n2.url("g1"), "read -P 0x22 0 1M")

    # The boss dies: node 2 takes over and configuration goes on.
    n1.kill()
    c.wait_serving([2, 3], 2)
    n3.ctl("vdisk", "create", "after-boss", "--pool", "p", "--size", "8M")
    qemu_io(n2.url("after-boss"), "write -P 0x44 0 1M")
    qemu_io(n3.url("v"), "read -P 0x33 1M 1M")

    # It comes back on its own, with what it missed, and is boss again.
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: "after-boss" in [v["name"] for v in n1.ctl_json("vdisk", "list")],
               "node 1 to catch up")
    qemu_io(n1.url("after-boss"), "read -P 0x44 0 1M")

    # Two of three die: the third stalls, refusing new connections at once
    # and saying why. A host connected before keeps its connection; each
    # request waits three leases for the cluster to form again (as it would
    # after a member came or went), fails with EIO, and succeeds again once
    # the lease is back.
    held = RawNbd(n3.nbd_port, "v")
    held.request(0, MiB, 4096, cookie=1)
    check(held.reply(4096)[0] == 0, "a read before the quorum loss")
    n1.kill()
    n2.kill()
    wait_until(lambda: not c.status(3)["quorum"], "node 3 to lose its quorum")
    t0 = time.monotonic()
    held.request(0, MiB, 4096, cookie=2)
    check(held.reply(4096)[:2] == (EIO, 2), "a request without a lease on an open connection")
    took = time.monotonic() - t0
    check(2.5 < took < 10, f"a request without a lease failed after {took:.1f} s, not three leases")
    t0 = time.monotonic()
    n3.ctl_fails("vdisk", "create", "refused", "--pool", "p", "--size", "8M",
                 contains="no quorum")
    check(time.monotonic() - t0 < 2, "a configuration command without quorum hung")
    r = qemu_io(n3.url("v"), "read 0 4k", ok=False)
    check(r.returncode != 0 and "no quorum" in (r.stdout + r.stderr), f"I/O without quorum: {r}")
    states = {n["id"]: n["state"] for n in n3.ctl_json("node", "list")}
    check(states == {1: "offline", 2: "offline", 3: "stalled"}, f"node list: {states}")
    c.start(2)
    c.wait_serving([2, 3], 2)
    held.request(0, MiB, 4096, cookie=3)
    err, cookie, data = held.reply(4096)
    check((err, cookie, data) == (0, 3, b"\x33" * 4096), "the open connection after the quorum returned")
    held.close()
    n3.ctl("vdisk", "create", "accepted", "--pool", "p", "--size", "8M")
    names = [v["name"] for v in n2.ctl_json("vdisk", "list")]
    check("refused" not in names and "accepted" in names, f"vdisks: {names}")
    qemu_io(n3.url("v"), "read -P 0x11 0 1M")

    # A stream of commands on node 3 while the boss (node 2) is SIGKILLed
    # and node 1 comes back: every command that succeeded is there.
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    done, stop = [], threading.Event()

    def stream():
        for k in range(200):
            if stop.is_set():
                break
            r = n3.ctl("vdisk", "create", f"s{k}", "--pool", "p", "--size", "4M", ok=False)
            if r.returncode == 0:
                done.append(f"s{k}")

    t = threading.Thread(target=stream)
    t.start()
    wait_until(lambda: len(done) >= 5, "the stream to get going", 30)
    n1.kill()  # the boss, in the middle of the stream
    wait_until(lambda: len(done) >= 15, "the stream to go on under a new boss", 60)
    stop.set()
    t.join()
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    c.wait_same_committed([1, 2, 3])
    check("installed the cluster state" in n1.read_log(),
          "node 1 was behind a short log but did not catch up from a snapshot")
    for n in (n1, n2, n3):
        names = {v["name"] for v in n.ctl_json("vdisk", "list")}
        missing = [d for d in done if d not in names]
        check(not missing, f"acknowledged commands lost: {missing}")
    lists = [n.ctl_json("vdisk", "list") for n in (n1, n2, n3)]
    check(lists[0] == lists[1] == lists[2], "vdisk lists differ after the stream")

    # Every node creating vdisks at once: each change that meets a newer model
    # is redone on it (after a random pause, or the boss's node, which hears
    # of each commit first, starves the others), so every create succeeds
    # and no extent is handed out twice; each vdisk is served once zeroed.
    def creator(node, prefix, out):
        for k in range(6):
            node.ctl("vdisk", "create", f"{prefix}{k}", "--pool", "p", "--size", "4M")
            out.append(f"{prefix}{k}")
    made = []
    threads = [threading.Thread(target=creator, args=(n, p, made))
               for n, p in ((n1, "w"), (n2, "x"), (n3, "y"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(made) == 18, f"concurrent creates: {made}")
    owner = {}
    for v in n1.ctl_json("vdisk", "list"):
        show = n1.ctl_json("vdisk", "show", v["name"])
        # (one the boss's death interrupted above may still be formatting)
        check(show["status"] == "online" or v["name"] not in made + done,
              f"{v['name']} is {show['status']}")
        for e in show["extents"]:
            key = (e["mdisk"], e["mdisk_extent"])
            check(key not in owner, f"extent {key} in {owner.get(key)} and {v['name']}")
            owner[key] = v["name"]
    qemu_io(n1.url("x5"), "read -P 0 0 4M")

    # Removing a node: it leaves, the others go on.
    n1.ctl("node", "remove", "3")
    c.wait_serving([1, 2], 1)
    wait_until(lambda: not c.status(3)["in_cluster"], "node 3 to leave the cluster")


def two_nodes_with_quorum_device(make):
    qd_dir = tempfile.mkdtemp(prefix="sve-qd-")
    qd = os.path.join(qd_dir, "quorum.img")
    with open(qd, "wb") as f:
        f.truncate(1 * MiB)
    try:
        c = Cluster(make, 2, quorum_device=qd)
        c.form()
        shared = c[1].make_file("shared.img", 128 * MiB)
        c[1].ctl("mdisk", "add", "m0", shared)
        c[1].ctl("pool", "create", "p", "--extent-size", "4M", "m0")
        c[1].ctl("vdisk", "create", "v", "--pool", "p", "--size", "16M")
        qemu_io(c[1].url("v"), "write -P 0x77 0 1M")
        for lost, survivor in ((2, 1), (1, 2)):
            c[lost].kill()
            c.wait_serving([survivor], survivor)
            c[survivor].ctl("vdisk", "create", f"without-{lost}", "--pool", "p", "--size", "4M")
            qemu_io(c[survivor].url("v"), "read -P 0x77 0 1M")
            c.start(lost)
            c.wait_serving([1, 2], 1)
    finally:
        os.unlink(qd)
        os.rmdir(qd_dir)


def test(make):
    three_nodes(make)
    two_nodes_with_quorum_device(make)


if __name__ == "__main__":
    run(test)

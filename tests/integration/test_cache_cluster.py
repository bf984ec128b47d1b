"""The cache in a cluster of real sved processes: a vdisk in an I/O group is
owned by its preferred node, and requests that reach any other node are
forwarded to it, so one cache holds the vdisk's state. Ownership moves with
the cluster's generations: when the owner stops (SIGSTOP: its process and
its cache live on, its lease runs out) the partner takes the vdisk over,
and when it comes back it owns the vdisk again and serves what was written
meanwhile, never what it had cached before."""
import json
import signal

from cluster_harness import Cluster
from harness import check, qemu_io, run, wait_until

MiB = 1 << 20


def cache_of(node, vdisk="v"):
    return node.ctl_json("vdisk", "show", vdisk)["cache"]


def check_shell(node):
    """The actor debug shell on the owner: its actors, each describing itself."""
    rows = json.loads(node.ctl("--json", "shell", "-c", "actors").stdout)
    kinds = {r["name"]: r["kind"] for r in rows}
    check(kinds.get("cluster") == "RSM" and kinds.get("interconnect") == "interconnect" and
          kinds.get("cache/0") == "facility" and kinds.get("backend/0") == "I/O",
          f"shell actors: {rows}")
    check(kinds.get("heartbeat/2") == "heartbeat" and kinds.get("heartbeat/3") == "heartbeat",
          f"heartbeat links in the shell: {sorted(kinds)}")
    link = json.loads(node.ctl("shell", "-c", "inspect heartbeat/2").stdout)
    check(link["state"]["peer"] == 2 and link["state"]["sent"] > 0, f"inspect heartbeat/2: {link}")
    cache = next(r for r in rows if r["name"] == "cache/0")
    check(cache["handled"] > 0 and cache["core"] == 0 and "mailbox" in cache, f"cache/0: {cache}")
    cluster = json.loads(node.ctl("shell", "-c", "inspect cluster").stdout)
    check(cluster["state"]["status"]["members"] == [1, 2, 3], f"inspect cluster: {cluster}")
    inspected = json.loads(node.ctl("shell", "-c", "inspect cache/0").stdout)
    check("dirty_extents" in inspected["state"], f"inspect cache/0: {inspected}")
    # Cluster messages carry binary events: traced, escaped, the node unharmed.
    traced = json.loads(node.ctl("--json", "shell", "-c", "trace cluster 3").stdout)
    check(len(traced) == 3 and all("tick" in t["message"] or "cluster" in t["message"]
                                   for t in traced), f"trace cluster 3: {traced}")
    def every_node():
        every = json.loads(node.ctl("--json", "shell", "-c", "cluster").stdout)
        return sorted(every) == ["1", "2", "3"] and all(
            isinstance(rows, list) and any(r.get("name") == "cluster" for r in rows)
            for rows in every.values())
    wait_until(every_node, "the shell to list the actors of all three nodes")
    r = node.ctl("shell", "-c", "inspect nobody", ok=False)
    check(r.returncode != 0 and "no actor" in r.stderr, f"inspect of a missing actor: {r.stderr}")


def test(make):
    c = Cluster(make, 3)
    c.form()
    n1, n2, n3 = c[1], c[2], c[3]
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 128 * MiB))
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("vdisk", "create", "loose", "--pool", "p", "--size", "8M")  # before any group
    n1.ctl("iogrp", "create", "g0", "1", "2")
    n1.ctl("vdisk", "create", "v", "--pool", "p", "--size", "32M", "--iogrp", "g0", "--node", "1")
    for n in (n2, n3):
        wait_until(lambda n=n: len(n.ctl_json("vdisk", "list")) == 2, "the vdisks on every node")

    owner = cache_of(n1)
    check(owner["mode"] == "write-back" and "mirrored with node 2" in owner["why"], f"node 1: {owner}")
    for n in (n2, n3):
        other = cache_of(n)
        check(other["mode"] == "off" and "owned by node 1" in other["why"], f"{other}")
    loose = cache_of(n2, "loose")
    check(loose["mode"] == "off" and "no I/O group" in loose["why"], f"loose: {loose}")
    shown = n3.ctl_json("node", "show")
    check(shown["mode"] == "off" and "no I/O group" in shown["why"], f"node 3: {shown}")

    # Written through node 3, read through node 2 and node 1: all executed
    # on node 1, whose cache serves the repeated reads.
    qemu_io(n3.url("v"), "write -P 0x11 0 1M", f"write -P 0x12 {4 * MiB - 512} 1024")
    qemu_io(n2.url("v"), "read -P 0x11 0 1M", f"read -P 0x12 {4 * MiB - 512} 1024")
    qemu_io(n1.url("v"), "read -P 0x11 0 1M")
    owner = cache_of(n1)
    check(owner["writes"] >= 2 and owner["reads"] >= 3 and owner["read_hits"] >= 1,
          f"the owner did not execute the forwarded requests: {owner}")
    check(cache_of(n2)["reads"] == 0, "node 2 executed reads of a vdisk it does not own")
    # The copies went to node 2 on the data channel, not through the actors.
    def link_of(node):
        return json.loads(node.ctl("shell", "-c", "inspect cache/0").stdout)["state"]["link"]
    wait_until(lambda: link_of(n1).get("copies_sent", 0) > 0,
               "node 1 to send copies on the data channel")
    check(link_of(n2).get("copies_received", 0) > 0, f"node 2's data channel: {link_of(n2)}")
    check_shell(n1)
    qemu_io(n3.url("loose"), "write -P 0x33 0 64K")
    qemu_io(n2.url("loose"), "read -P 0x33 0 64K")

    # The owner stops answering with its cache intact; its lease runs out and
    # the partner takes the vdisk over.
    n1.send(signal.SIGSTOP)
    try:
        c.wait_serving([2, 3], 2)
        wait_until(lambda: cache_of(n2)["mode"] == "write-through", "node 2 to own the vdisk")
        check("node 1" in cache_of(n2)["why"], f"node 2's reason: {cache_of(n2)}")
        qemu_io(n3.url("v"), "write -P 0x22 0 1M")
        qemu_io(n2.url("v"), "read -P 0x22 0 1M", f"read -P 0x12 {4 * MiB - 512} 1024")
    finally:
        n1.send(signal.SIGCONT)
    # Back: node 1 owns the vdisk again and must not serve what it cached
    # before it stopped.
    c.wait_serving([1, 2, 3], 1)
    # Node 2 runs the group alone until it has destaged what the group
    # cached; then both write back again, node 1 owning its vdisk.
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "node 1 to own the vdisk again")
    qemu_io(n1.url("v"), "read -P 0x22 0 1M")
    qemu_io(n3.url("v"), "read -P 0x22 0 1M")

    # A move to the other node of the group, with dirty data on the old
    # owner: node 1 destages and hands over, node 2 owns it from then on.
    qemu_io(n3.url("v"), "write -P 0x66 8M 1M")
    check(cache_of(n1)["dirty_bytes"] > 0, f"nothing dirty before the move: {cache_of(n1)}")
    n3.ctl("vdisk", "move", "v", "--node", "2")
    wait_until(lambda: cache_of(n2)["mode"] == "write-back", "node 2 to own the moved vdisk")
    check("mirrored with node 1" in cache_of(n2)["why"], f"node 2 after the move: {cache_of(n2)}")
    qemu_io(n3.url("v"), "read -P 0x66 8M 1M", "write -P 0x67 9M 1M")
    qemu_io(n1.url("v"), "read -P 0x66 8M 1M", "read -P 0x67 9M 1M")
    check(cache_of(n2)["writes"] >= 1, f"node 2 did not execute the write: {cache_of(n2)}")
    n3.ctl("vdisk", "move", "v", "--node", "1")
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "node 1 to own the vdisk again")
    qemu_io(n2.url("v"), "read -P 0x67 9M 1M", "read -P 0x22 0 1M")

    # A clean stop destages first (the partner still takes over its copies
    # whose release did not reach it before the process ended: the same data).
    qemu_io(n3.url("v"), "write -P 0x55 2M 2M")
    check(cache_of(n1)["dirty_bytes"] > 0, f"nothing dirty before the stop: {cache_of(n1)}")
    check(n1.stop() == 0, "node 1 did not stop cleanly")
    check("the cache is destaged" in n1.read_log(), "node 1 did not destage on SIGTERM")
    c.wait_serving([2, 3], 2)
    wait_until(lambda: cache_of(n2)["mode"] == "write-through", "node 2 to run the group alone")
    qemu_io(n3.url("v"), "read -P 0x55 2M 2M", "read -P 0x22 0 1M")
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: cache_of(n1)["mode"] == "write-back", "node 1 to own the vdisk again")

    # The partner dies: the owner goes on, without a partner.
    n2.kill()
    c.wait_serving([1, 3], 1)
    wait_until(lambda: "node 2" in cache_of(n1)["why"], "node 1 to report its partner gone")
    qemu_io(n3.url("v"), "write -P 0x44 1M 1M", "read -P 0x44 1M 1M", "read -P 0x22 0 1M")


run(test)

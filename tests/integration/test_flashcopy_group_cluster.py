"""A consistency group whose mappings are executed by three different nodes
of two I/O groups (a four-node cluster): a host with dependent writes
(python3-libnbd; each record sent only once the one before it was
acknowledged), its three vdisks reached through three different nodes,
one of them forwarding to the owner. In every round of the group's
prepare, start and stop, each node pauses and drains its own mapping's
writes, and the one cluster change that marks the last mapping drained
starts them all: on the targets every record present implies all earlier
ones."""
from cluster_harness import Cluster
from dependent_writes import Chain, check_point_in_time
from harness import check, run, wait_until

MiB = 1 << 20
VDISK = 64 * MiB  # room for three rounds of a fast writer (about 8,000 records each here)
# vdisk -> (I/O group, preferred node)
PLACES = {"a1": ("g0", 1), "a2": ("g1", 3), "a3": ("g0", 2)}


def executed(c):
    """(mapping, node) for each mapping a node's facility copies now (and
    knows the progress of)."""
    out = set()
    for node in (1, 2, 3, 4):
        for f in c[node].ctl_json("fcmap", "list"):
            if f.get("progress", {}).get("known"):
                out.add((f["name"], node))
    return out


def group_state(node):
    return node.ctl_json("fcconsistgrp", "show", "cg")["state"]


def test(make):
    c = Cluster(make, 4, extra=["--cache-size", "4M"])
    c.form()
    n1 = c[1]
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 512 * MiB))
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("iogrp", "create", "g0", "1", "2")
    n1.ctl("iogrp", "create", "g1", "3", "4")
    for i, (source, (group, node)) in enumerate(PLACES.items(), start=1):
        for name in (source, f"t{i}"):
            n1.ctl("vdisk", "create", name, "--pool", "p", "--size", f"{VDISK // MiB}M",
                   "--iogrp", group, "--node", str(node))
    n1.ctl("fcconsistgrp", "create", "cg")
    for i, source in enumerate(PLACES, start=1):
        n1.ctl("fcmap", "create", "--source", source, "--target", f"t{i}", "--name", f"m{i}",
               "--copyrate", "0", "--consistgrp", "cg")
    for name, (_, node) in PLACES.items():
        wait_until(lambda: c[node].ctl_json("vdisk", "show", name)["cache"]["mode"] ==
                   "write-back", f"{name} written back on node {node}")

    # a1 through node 4 (forwarded to node 1), a2 through its owner, a3
    # through node 2, its owner.
    chain = Chain([c[4].url("a1"), c[3].url("a2"), c[2].url("a3")], VDISK)
    for rnd in range(3):
        chain.start()
        chain.wait_for(chain.next + 300, timeout=30)
        n1.ctl("fcconsistgrp", "start", "cg", "--prep")
        wait_until(lambda: group_state(n1) == "copying", "cg copying", timeout=30)
        # The committed state runs ahead of the data path's view on a
        # loaded machine: until each executing node's facility has its
        # mapping copying, a read of its target can still see the view before.
        wait_until(lambda: executed(c) == {("m1", 1), ("m2", 3), ("m3", 2)},
                   "each mapping copying where it is executed", timeout=30)
        at_start = chain.next
        chain.wait_for(at_start + 300, timeout=30)
        chain.halt()  # (the vdisks hold 24,576 records: not spent on reading the targets)
        check(chain.next < 3 * VDISK // 4096, "the chain ran out of room")
        # (Read through the nodes that execute them.)
        check_point_in_time([c[node].url(f"t{i}") for i, (_, node) in
                             enumerate(PLACES.values(), start=1)], VDISK, at_start,
                            300 * (rnd + 1),
                            f"round {rnd}")
        n1.ctl("fcconsistgrp", "stop", "cg")
    chain.close()
    return 0


if __name__ == "__main__":
    run(test)

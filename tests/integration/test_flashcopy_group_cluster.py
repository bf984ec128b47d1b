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
from dependent_writes import Chain, holes_below_top, records_on
from harness import check, run, wait_until

MiB = 1 << 20
VDISK = 32 * MiB
# vdisk -> (I/O group, preferred node)
PLACES = {"a1": ("g0", 1), "a2": ("g1", 3), "a3": ("g0", 2)}


def group_state(node):
    return node.ctl_json("fcconsistgrp", "show", "cg")["state"]


def test(make):
    c = Cluster(make, 4, extra=["--cache-size", "4M"])
    c.form()
    n1 = c[1]
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 256 * MiB))
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
        at_start = chain.next
        chain.wait_for(at_start + 300, timeout=30)
        chain.halt()  # (the vdisks hold 24,576 records: not spent on reading the targets)
        check(chain.next < 3 * VDISK // 4096, "the chain ran out of room")
        present = records_on([c[4].url(f"t{i}") for i in (1, 2, 3)], VDISK)
        holes = holes_below_top(present)
        check(not holes, f"round {rnd}: the targets hold record {max(present)} but not "
                         f"{holes[:5]} it depended on")
        check(len(present) >= 300 * (rnd + 1) and max(present) < at_start,
              f"round {rnd}: {len(present)} records on the targets, {at_start} at the start")
        print(f"round {rnd}: {len(present)} records on the targets, {at_start} written when "
              f"the group was seen copying")
        # Which node executes each mapping (and knows its progress).
        executed = set()
        for node in (1, 2, 3, 4):
            for f in c[node].ctl_json("fcmap", "list"):
                if "grains" in f.get("progress", {}):
                    executed.add((f["name"], node))
        check(executed == {("m1", 1), ("m2", 3), ("m3", 2)},
              f"the mappings were not executed by three nodes: {sorted(executed)}")
        n1.ctl("fcconsistgrp", "stop", "cg")
    chain.close()
    return 0


if __name__ == "__main__":
    run(test)

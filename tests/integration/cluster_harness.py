"""A cluster of real sved processes on 127.0.0.1, formed from admin commands."""
import shutil

from harness import check, free_port, wait_until

# A short log, so that a node that was down catches up from a snapshot.
TIMING = ["--heartbeat-ms", "50", "--lease-ms", "1000", "--log-keep", "4"]


class Cluster:
    def __init__(self, make, n, quorum_device=None, extra=()):
        self.nodes = {}
        for i in range(1, n + 1):
            node = make()
            node.node_id = i
            node.cluster_port = free_port()
            node.extra = ["--cluster", f"127.0.0.1:{node.cluster_port}", "--node-id", str(i),
                          *TIMING, *extra] + (["--quorum-device", quorum_device] if quorum_device else [])
            self.nodes[i] = node

    def __getitem__(self, i):
        return self.nodes[i]

    def start(self, i):
        return self.nodes[i].start(self.nodes[i].extra)

    def status(self, i):
        return self.nodes[i].ctl_json("cluster", "status")

    def wait_serving(self, ids, boss, timeout=20):
        def ok():
            for i in ids:
                s = self.status(i)
                if not (s["quorum"] and s["boss"] == boss and s["members"] == sorted(ids)):
                    return False
            return True
        wait_until(ok, f"nodes {ids} serving with boss {boss}", timeout)

    def wait_same_committed(self, ids):
        wait_until(lambda: len({self.status(i)["committed"] for i in ids}) == 1,
                   f"nodes {ids} to agree on the last committed event")

    def form(self, on_started=None):
        ids = sorted(self.nodes)
        for i in ids:
            self.start(i)
        if on_started:
            on_started()
        first = self.nodes[ids[0]]
        check(first.ctl_json("cluster", "status")["in_cluster"] is False, "fresh node in a cluster")
        first.ctl_fails("vdisk", "create", "early", "--pool", "p", "--size", "1M",
                        contains="not in a cluster")
        first.ctl("cluster", "create", "it")
        # Each node is added once the ones before it serve: the majority
        # that must commit the next addition counts them (adding a third
        # node before the second had joined was refused "no quorum" under
        # load, in integration.group_lost and integration.iscsi_alua).
        for k, i in enumerate(ids[1:], start=2):
            self.add(first, i)
            self.wait_serving(ids[:k], ids[0])

    def add(self, via, i):
        """Node i joins through node `via`, which hands it the cluster key."""
        via.ctl("node", "add", "--id", str(i), f"127.0.0.1:{self.nodes[i].cluster_port}",
                "--node-admin", self.nodes[i].admin)

    def group_vdisk(self, name, size_mib, disk_mib):
        """Nodes 1 and 2 as I/O group g0 (node 3 keeps a majority), a pool on
        one shared file, and a vdisk of the group owned by node 1, once it
        writes back."""
        n1 = self.nodes[1]
        n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", disk_mib << 20))
        n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
        n1.ctl("iogrp", "create", "g0", "1", "2")
        n1.ctl("vdisk", "create", name, "--pool", "p", "--size", f"{size_mib}M", "--iogrp", "g0",
               "--node", "1")
        wait_until(lambda: n1.ctl_json("vdisk", "show", name)["cache"]["mode"] == "write-back",
                   "write-back on node 1")


def iscsi_cluster(make, n, target, libiscsi_loaded):
    """n nodes, each an iSCSI target `target` on its own portal, not formed
    yet: (cluster, {node: portal}); None when libiscsi (the library the
    tests drive, and its tools) is not installed."""
    if not libiscsi_loaded or shutil.which("iscsi-inq") is None:
        print("libiscsi is not installed")
        return None
    c = Cluster(make, n)
    portals = {}
    for i in range(1, n + 1):
        portals[i] = f"127.0.0.1:{free_port()}"
        c[i].extra += ["--iscsi", portals[i], "--iscsi-target", target]
    return c, portals

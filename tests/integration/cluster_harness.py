"""A cluster of real sved processes on 127.0.0.1, formed from admin commands."""
from harness import check, free_port, wait_until

# A short log, so that a node that was down catches up from a snapshot.
TIMING = ["--heartbeat-ms", "50", "--lease-ms", "1000", "--log-keep", "4"]


class Cluster:
    def __init__(self, make, n, quorum_device=None):
        self.nodes = {}
        for i in range(1, n + 1):
            node = make()
            node.node_id = i
            node.cluster_port = free_port()
            node.extra = ["--cluster", f"127.0.0.1:{node.cluster_port}", "--node-id", str(i),
                          *TIMING] + (["--quorum-device", quorum_device] if quorum_device else [])
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

    def form(self):
        ids = sorted(self.nodes)
        for i in ids:
            self.start(i)
        first = self.nodes[ids[0]]
        check(first.ctl_json("cluster", "status")["in_cluster"] is False, "fresh node in a cluster")
        first.ctl_fails("vdisk", "create", "early", "--pool", "p", "--size", "1M",
                        contains="not in a cluster")
        first.ctl("cluster", "create", "it")
        for i in ids[1:]:
            first.ctl("node", "add", "--id", str(i), f"127.0.0.1:{self.nodes[i].cluster_port}")
        self.wait_serving(ids, ids[0])



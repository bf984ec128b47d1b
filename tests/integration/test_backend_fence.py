"""A node that lost its lease changes nothing on the back end (docs/cache.md,
"Fencing"): its partner takes its vdisks over once the lease has run out,
and a write the old owner still had queued must not land over what the
new owner wrote since.

Three nodes, nodes 1 and 2 the vdisk's I/O group, node 1 its owner in
write-back. Node 1's mdisk stalls; a host's write A is acknowledged
(mirrored to node 2) and its destage waits in node 1's stalled back end.
Node 1 is cut off from the others: node 2 takes the vdisk over and the
host writes B there. The stall ends while node 1 is still cut off: its
destage of A is refused (node 1's lease ran out), and the shared disk
holds B, not A, then and after node 1 is back in the cluster.
"""
import json
import time

from cluster_harness import iscsi_cluster
from harness import SKIP, check, run, wait_until

try:
    from iscsi_client import GOOD, IscsiSession
except OSError:  # libiscsi7 is not installed
    IscsiSession = None

TARGET = "iqn.2026-12.org.sve:fence"
LBA = 20000  # (4 KiB: eight blocks)


def settled(command, what):
    """The command's answer once past unit attentions and NOT READY while
    the group changes hands, as a multipath host retries them."""
    answer = []

    def final():
        answer[:] = command()
        status, sense = answer[0], answer[1]
        return not (status == 2 and sense and sense[0] in (2, 6))
    wait_until(final, lambda: f"{what}: {answer[:2]}", timeout=30)
    return answer


def session_once_ready(portal, initiator, what):
    """A session to `portal`, logged in again while the login's own TEST
    UNIT READY finds the group changing hands (NOT READY, transitioning),
    as an initiator retries it."""
    made = []

    def login():
        try:
            made.append(IscsiSession(portal, TARGET, 0, initiator=initiator))
        except ConnectionError as e:
            check("NOT READY" in str(e), f"{what}: {e}")
            return False
        return True
    wait_until(login, what, timeout=30)
    return made[0]


def found(path, data):
    with open(path, "rb") as f:
        return f.read().find(data) >= 0


def held_in_stall(node):
    """Requests node 1's stalled back end holds (the chaos fault facility)."""
    shown = json.loads(node.ctl("shell", "-c", "inspect faults/0").stdout)

    def held(j):
        if isinstance(j, dict):
            return j.get("held", 0) + sum(held(v) for k, v in j.items() if k != "held")
        if isinstance(j, list):
            return sum(held(v) for v in j)
        return 0
    return held(shown)


def fenced(node):
    return sum(core["ring"]["fenced"] for core in node.ctl_json("node", "stats")["cores"])


def test(make):
    made = iscsi_cluster(make, 3, TARGET, IscsiSession is not None)
    if made is None:
        return SKIP
    c, portals = made
    c[1].extra += ["--enable-chaos"]
    c.form()
    c.group_vdisk("v", 32, 128)
    disk = c[1].data_dir + "/shared.img"
    a, b = (b"fence test A " * 316)[:4096], (b"fence test B " * 316)[:4096]

    h1 = IscsiSession(portals[1], TARGET, 0, initiator="iqn.2026-12.test:fence1")
    h2 = IscsiSession(portals[2], TARGET, 0, initiator="iqn.2026-12.test:fence2")
    settled(lambda: h1.command(bytes(6)), "TEST UNIT READY through node 1")
    settled(lambda: h2.command(bytes(6)), "TEST UNIT READY through node 2")

    # A, acknowledged by node 1, its destage held in the stalled back end.
    stall_ms, cut_ms = 9000, 14000
    c[1].ctl("chaos", "inject", "mdisk-stall", "--duration", str(stall_ms))
    stalled_at = time.monotonic()
    check(h1.write(LBA, a)[0] == GOOD, "write A through node 1 (write-back)")
    wait_until(lambda: held_in_stall(c[1]) > 0, "node 1's destage of A waits in the stall",
               timeout=stall_ms / 2000)
    h1.close()

    # Node 1 cut off: node 2 takes over; B through node 2.
    c[1].ctl("chaos", "inject", "partition", "--duration", str(cut_ms))
    # (Until its lease runs out node 1 still serves what node 2 forwards:
    # B waits for the cluster of nodes 2 and 3.)
    wait_until(lambda: c.status(2)["quorum"] and c.status(2)["members"] == [2, 3],
               "nodes 2 and 3 form the cluster without node 1", timeout=stall_ms / 2000)
    status = settled(lambda: h2.write(LBA, b), "write B through node 2 once it took over")[0]
    check(status == GOOD, f"write B through node 2: {status}")
    check(time.monotonic() < stalled_at + stall_ms / 1000,
          "B was written before node 1's stall ended (the test's timing)")
    check(found(disk, b), "B is on the shared disk (node 2 runs the group alone: write-through)")

    # The stall ends while node 1 is still cut off: its destage is refused.
    wait_until(lambda: fenced(c[1]) > 0, "node 1 refuses its queued destage of A",
               timeout=stall_ms / 1000 + 10)
    check(found(disk, b) and not found(disk, a),
          "the shared disk holds B, not node 1's late A")

    # Node 1 back in the cluster: B everywhere, A nowhere.
    wait_until(lambda: all(c.status(i)["quorum"] and c.status(i)["members"] == [1, 2, 3]
                           for i in (1, 2, 3)), "node 1 back in the cluster", timeout=30)
    status, _, data = settled(lambda: h2.read(LBA, 8), "read through node 2")
    check(status == GOOD and data == b, f"node 2 reads B: {status} {data[:8]!r}")
    h1 = session_once_ready(portals[1], "iqn.2026-12.test:fence1", "a login to node 1, back")
    status, _, data = settled(lambda: h1.read(LBA, 8), "read through node 1")
    check(status == GOOD and data == b, f"node 1, back, reads B: {status} {data[:8]!r}")
    check(found(disk, b) and not found(disk, a), "the shared disk still holds B, not A")
    print(f"node 1's late destage refused ({fenced(c[1])} fenced); B kept")
    return 0


if __name__ == "__main__":
    run(test)

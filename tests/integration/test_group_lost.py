"""Both nodes of an I/O group die while the rest of the cluster keeps its
quorum: a host connected to another node has its requests for the group's
vdisk held, and after at most three leases failed with EIO (never hung,
never acknowledged), on a connection that stays open; once the group's
owner returns, the same connection is served again with what was written
before."""
import time

from cluster_harness import Cluster
from harness import RawNbd, check, qemu_io, run

EIO = 5
LEASE_S = 1.0  # cluster_harness.TIMING: --lease-ms 1000


def test(make):
    c = Cluster(make, 5, extra=["--cache-size", "4M"])
    c.form()
    n1, n2, n3 = c[1], c[2], c[3]
    c.group_vdisk("v", 16, 64)
    qemu_io(n3.url("v"), "write -P 0x5e 0 1M", "flush")
    host = RawNbd(n3.nbd_port, "v")
    host.s.settimeout(60)
    host.request(0, 0, 4096, cookie=1)
    check(host.reply(4096)[:2] == (0, 1), "a read through node 3 before the fault")

    # Sent at once, while node 3 still routes it to node 1: held through
    # the takeover, then failed.
    n1.kill()
    n2.kill()
    began = time.monotonic()
    host.request(1, 8192, 4096, payload=b"\x6f" * 4096, cookie=2)
    err, cookie, _ = host.reply()
    took = time.monotonic() - began
    check((err, cookie) == (EIO, 2), f"a write held for a lost group: error {err}")
    check(took <= 3 * LEASE_S + 3, f"the held write failed only after {took:.1f} s")
    print(f"a write held for a lost group failed with EIO after {took:.2f} s")
    # Once the others serve without the group, at once.
    c.wait_serving([3, 4, 5], 3)
    began = time.monotonic()
    host.request(1, 8192, 4096, payload=b"\x6f" * 4096, cookie=3)
    check(host.reply()[:2] == (EIO, 3), "a write for a group with no node")
    check(time.monotonic() - began < 1, "a write for a group with no node was held")

    c.start(1)
    c.wait_serving([1, 3, 4, 5], 1)
    deadline = time.monotonic() + 30
    cookie = 4
    while True:  # until node 1 runs the group again
        host.request(0, 0, 4096, cookie=cookie)
        err, got, data = host.reply(4096)
        check(got == cookie, f"reply to cookie {got}, expected {cookie}")
        if err == 0:
            break
        check(err == EIO and time.monotonic() < deadline, f"the group did not come back: {err}")
        cookie += 1
    check(data == b"\x5e" * 4096, "the data written before the fault")
    host.close()
    # Node 3 reached the restarted owner on the connection its heartbeats
    # hold (node 1's own, into node 3): a link node 3 opens by itself can
    # hang in CAF's middleman when the peer restarts under it.
    reached = [l for l in n3.read_log().splitlines() if "interconnect: reached node 1" in l]
    check(len(reached) == 2 and all("heartbeats' connection" in l for l in reached),
          f"node 3 reached node 1 on another connection: {reached}")


run(test)

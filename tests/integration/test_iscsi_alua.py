"""ALUA from the I/O group, with real processes and libiscsi (iscsi_client.py):
three nodes, each an iSCSI portal of the one target and a target port group
of its own; nodes 1 and 2 are I/O group g0 and a vdisk prefers node 1.

  1. Every node reports the same: node 1's group active/optimized and
     preferred, the others active/non-optimized; discovery through one node
     lists every node's portal, each its node's portal group; VPD 0x83 names
     the port it was asked through. iscsi-test-cu's MultipathIO family
     passes with one path through each node of the group (a LUN reset
     through one node is a unit attention on the other's sessions), and
     through nodes 1 and 3, node 3 forwarding on the interconnect actor's
     path (no data channel): compare-and-writes reach the owner that way too.
  2. A multipath writer (sessions to all three nodes; it sends to the
     group that says active/optimized, and when a path fails or refuses it
     asks the others again, as dm-multipath's ALUA handler does) writes
     while node 1 is SIGKILLed: it goes on through node 2, which reports
     itself optimized once it owns the vdisk (node 1 unavailable), and the
     sessions that stayed were told by unit attention. Every acknowledged
     write reads back from nodes 2 and 3.
  3. Node 1 returns: once the group writes back again, it is optimized
     again, and the data reads back through it.
  4. Node 3 stops when asked (SIGTERM: exit status 0 within 30 s). Node 1
     left without a lease (nodes 2 and 3 gone) first reports its
     own group transitioning and refuses I/O with NOT READY, asymmetric
     access state transition (as every node does while the next generation
     forms: a host retries there), then, three leases on, unavailable and
     NOT READY, target port in unavailable state."""
import random
import re
import subprocess
import threading

from cluster_harness import iscsi_cluster
from harness import SKIP, check, run, wait_until

try:
    from iscsi_client import (GOOD, NON_OPTIMIZED, OPTIMIZED, TRANSITIONING, UNAVAILABLE,
                              IscsiSession)
except OSError:  # no libiscsi7
    IscsiSession = None

TARGET = "iqn.2026-12.org.sve:alua"
BLOCKS = 1024  # 4 KiB blocks written, the first 4 MiB of the vdisk
UNAVAILABLE_PORT = (0x02, 0x04, 0x0c)
TRANSITIONING_PORT = (0x02, 0x04, 0x0a)


def port_groups(session, tries=5):
    """REPORT TARGET PORT GROUPS, past the unit attentions it may meet
    first; None if the session is gone."""
    for _ in range(tries):
        groups = session.port_groups()
        if groups is not None:
            return groups
        status, _, _ = session.command(bytes(6))  # (TEST UNIT READY: takes a UA)
        if status is None:
            return None
    return None


class MultipathWriter:
    """Writes 4 KiB blocks (each a sequence number, repeated) through the
    optimized path; a write that fails is sent again, with the same data,
    through whatever path is optimized then, until acknowledged."""

    def __init__(self, sessions):
        self.sessions = sessions  # by node id
        self.acked = {}           # block: sequence number
        self.count = 0
        self.paths_used = []      # node ids, in order of use
        self.failed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        check(not self._thread.is_alive(), "the writer stopped")
        check(self.failed is None, f"the writer: {self.failed}")

    def _choose(self):
        """The node whose group says active/optimized, asked through every
        live session; None while no group is."""
        for node, s in sorted(self.sessions.items()):
            if s.ctx is None:
                continue
            groups = port_groups(s)
            if groups is None:
                s.close()  # the path is gone
                continue
            for group, (state, _) in groups.items():
                if state == OPTIMIZED and group in self.sessions and \
                        self.sessions[group].ctx is not None:
                    return group
        return None

    def _run(self):
        rng = random.Random(7)
        seq = 0
        self._path = None
        try:
            while not self._stop.is_set():
                seq += 1
                block = rng.randrange(BLOCKS)
                data = seq.to_bytes(8, "little") * 512
                # Sent again, through whatever path is optimized then, until
                # a path takes it (a host's retry): at most 60 s.
                wait_until(lambda: self._attempt(block, data), lambda: f"a path for block {block}",
                           timeout=60)
                self.acked[block] = seq
                self.count += 1
        except Exception as e:  # noqa: BLE001 (reported by stop())
            self.failed = repr(e)

    def _attempt(self, block, data):
        if self._path is None:
            self._path = self._choose()
            if self._path is None:
                return False
            self.paths_used.append(self._path)
        status, _, _ = self.sessions[self._path].write(block * 8, data)
        if status == GOOD:
            return True
        if status is None:
            self.sessions[self._path].close()
        self._path = None  # ask again
        return False


def verify(session, acked, what):
    for block, seq in sorted(acked.items()):
        status, sense, data = session.read(block * 8, 8)
        check(status == GOOD, f"{what}: reading block {block}: {status} {sense}")
        got = int.from_bytes(data[:8], "little")
        check(got == seq, f"{what}: block {block} holds write {got}, acknowledged {seq}")


def wait_writes(writer, more, what):
    target = writer.count + more
    wait_until(lambda: writer.count >= target or writer.failed, what, timeout=60)
    check(writer.failed is None, f"the writer: {writer.failed}")


def test(make):
    made = iscsi_cluster(make, 3, TARGET, IscsiSession is not None)
    if made is None:
        return SKIP
    c, portals = made
    # Node 3 forwards through the interconnect actor, not a data channel.
    c[3].extra += ["--data-channel", "off"]
    c.form()
    c.group_vdisk("v", 32, 128)

    def session(i):
        return IscsiSession(portals[i], TARGET, 0, initiator=f"iqn.2026-12.test:alua{i}")

    # 1. What every node reports.
    sessions = {i: session(i) for i in (1, 2, 3)}
    expected = {1: (OPTIMIZED, True), 2: (NON_OPTIMIZED, False), 3: (NON_OPTIMIZED, False)}
    for i, s in sessions.items():
        wait_until(lambda: port_groups(s) == expected,
                   lambda: f"node {i}'s port groups {port_groups(s)}, expected {expected}")
    # The administrator sees the same in `vdisk show`, on any node.
    def shown(i):
        return [(p["node"], p["state"], p["preferred"])
                for p in c[i].ctl_json("vdisk", "show", "v")["paths"]]
    check(shown(3) == [(1, "active/optimized", True), (2, "active/non-optimized", False),
                       (3, "active/non-optimized", False)], f"vdisk show's paths: {shown(3)}")
    check("paths (ALUA)" in c[2].ctl("vdisk", "show", "v").stdout, "svectl shows the paths")

    # COMPARE AND WRITE's miscompare says where (SBC-3: the offset into the
    # Data-Out of the first byte that differs, in the sense data's
    # INFORMATION field), whichever path ran it: node 1 itself, node 2
    # forwarding on the data channel, node 3 on the interconnect actor.
    block = bytes(range(256)) * 2
    for i, s in sessions.items():
        for _ in range(3):  # (past unit attentions)
            status, sense, _ = s.write(300 + i, block)
            if status == GOOD:
                break
        check(status == GOOD, f"a block written through node {i}: {status} {sense}")
        wrong = bytearray(block)
        wrong[100 * i] ^= 0xff
        cdb = bytes([0x89, 0]) + (300 + i).to_bytes(8, "big") + bytes(3) + bytes([1, 0, 0])
        status, sense, data = s.command(cdb, data_out=bytes(wrong) + bytes(512))
        check(status == 2 and sense == (0x0e, 0x1d, 0x00),
              f"COMPARE AND WRITE through node {i} miscompares: {status} {sense}")
        check(len(data) >= 9 and data[2] & 0x80 and int.from_bytes(data[5:9], "big") == 100 * i,
              f"its sense says where, through node {i}: {data.hex()}")
        # (VERIFY with BYTCHK says so too.)
        cdb = bytes([0x2f, 0x02]) + (300 + i).to_bytes(4, "big") + bytes([0, 0, 1, 0])
        status, sense, data = s.command(cdb, data_out=bytes(wrong))
        check(status == 2 and sense == (0x0e, 0x1d, 0x00) and len(data) >= 9 and
              data[2] & 0x80 and int.from_bytes(data[5:9], "big") == 100 * i,
              f"VERIFY's miscompare through node {i} says where: {status} {sense} {data.hex()}")
        # ORWRITE ORs its data into the block at the owner, on every path.
        ored = bytes(range(256)) + bytes([0x80 | (i << 4)]) * 256
        cdb = bytes([0x8b, 0x08]) + (300 + i).to_bytes(8, "big") + (1).to_bytes(4, "big") + bytes(2)
        status, sense, _ = s.command(cdb, data_out=ored)
        check(status == GOOD, f"ORWRITE through node {i}: {status} {sense}")
        status, sense, data = s.read(300 + i, 1)
        check(status == GOOD and data == bytes(a | b for a, b in zip(block, ored)),
              f"the block holds the OR of both, through node {i}: {status} {sense} {data.hex()}")

    # Discovery through one node lists every node's portal, each its own
    # portal group.
    def discovered():
        return subprocess.run(["iscsi-ls", "-s", f"iscsi://{portals[2]}"], capture_output=True,
                              text=True, timeout=60).stdout
    wait_until(lambda: all(f"Portal:{portals[i]},{i}" in discovered() for i in (1, 2, 3)),
               lambda: f"every portal in node 2's SendTargets: {discovered()}")
    inq = subprocess.run(["iscsi-inq", "-e", "1", "-c", "131", f"iscsi://{portals[3]}/{TARGET}/0"],
                         capture_output=True, encoding="utf-8", errors="replace",
                         timeout=60).stdout
    check("RELATIVE_TARGET_PORT" in inq and "TARGET_PORT_GROUP" in inq,
          f"VPD 0x83 names the port and its group: {inq}")

    # The conformance suite's multipath tests with a path through each node
    # of the group: a LUN reset through one is a unit attention on the
    # other's session, compare-and-writes through both at once are atomic.
    # Again through nodes 1 and 3, whose compare-and-writes travel on the
    # interconnect actor's path.
    for pair in ((1, 2), (1, 3)):
        # (Its CompareAndWrite test zeroes LBAs 0-255 but runs through LBA
        # 256 too, expecting zeros there: what the run before left is
        # zeroed first.)
        for _ in range(3):  # (past the unit attentions of the last run's resets)
            status, sense, _ = sessions[1].write(256, bytes(512))
            if status == GOOD:
                break
        check(status == GOOD, f"zeroing LBA 256: {status} {sense}")
        urls = [f"iscsi://{portals[i]}/{TARGET}/0" for i in pair]
        cu = subprocess.run(["iscsi-test-cu", "--dataloss",
                             "--initiator-name=iqn.2026-12.test:cu1",
                             "--initiator-name-2=iqn.2026-12.test:cu2", "--test=ALL.MultipathIO",
                             *urls], capture_output=True, text=True, errors="replace",
                            timeout=300)
        summary = re.search(r"tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", cu.stdout)
        skipped = [line for line in cu.stdout.splitlines() if "[SKIPPED]" in line]
        check(summary and int(summary.group(2)) >= 4 and summary.group(2) == summary.group(3) and
              not skipped,
              f"MultipathIO through nodes {pair}:\n{cu.stdout[-3000:]}{cu.stderr[-1000:]}")
        print(f"MultipathIO through nodes {pair}: {summary.group(3)} of {summary.group(2)} passed")

    # 2. Node 1, the preferred node, dies under the writer.
    writer = MultipathWriter(sessions)
    writer.start()
    wait_writes(writer, 300, "300 writes through node 1")
    check(writer.paths_used == [1], f"the writer sends to the optimized node 1: {writer.paths_used}")
    c[1].kill()
    c.wait_serving([2, 3], 2)
    wait_writes(writer, 300, "300 writes after node 1 died")
    writer.stop()
    check(writer.paths_used[-1] == 2, f"the writer went on through node 2: {writer.paths_used}")
    after = {1: (UNAVAILABLE, True), 2: (OPTIMIZED, False), 3: (NON_OPTIMIZED, False)}
    for i in (2, 3):
        s = sessions[i]
        wait_until(lambda: port_groups(s) == after,
                   lambda: f"node {i}'s port groups {port_groups(s)}, expected {after}")
    wait_until(lambda: shown(2)[:2] == [(1, "unavailable", True), (2, "active/optimized", False)],
               lambda: f"node 2's vdisk show: {shown(2)}")
    told = sessions[2].attentions + sessions[3].attentions
    check(told > 0, "the sessions that stayed were told of the change by unit attention")
    print(f"writer: {writer.count} writes acknowledged, paths {writer.paths_used}, "
          f"{told} unit attentions")
    verify(sessions[2], writer.acked, "through node 2")
    verify(sessions[3], writer.acked, "through node 3")

    # 3. Node 1 returns and is optimized again once the group writes back.
    c.start(1)
    c.wait_serving([1, 2, 3], 1)
    wait_until(lambda: c[1].ctl_json("vdisk", "show", "v")["cache"]["mode"] == "write-back",
               "write-back again after the resync", timeout=30)
    sessions[1] = session(1)
    told = sessions[2].attentions
    for i in (1, 2):
        s = sessions[i]
        wait_until(lambda: port_groups(s) == expected,
                   lambda: f"node {i}'s port groups {port_groups(s)}, expected {expected}")
    check(sessions[2].attentions > told, "node 2's session was told node 1 is back")
    verify(sessions[1], writer.acked, "through node 1, back")

    # 4. Node 1 alone, without a lease: its port is transitioning for three
    # leases (lease 1 s here), then unavailable. Node 3 is stopped, not
    # killed: a node with an iSCSI port exits when asked (its port held the
    # interconnect's handle past the actor system, and every such stop hung).
    sessions[3].close()
    check(c[3].stop() == 0, "node 3 stopped, exit status 0")
    sessions[2].close()
    c[2].kill()
    s = sessions[1]
    seen = []  # (port groups, read status, sense, vdisk show's paths) as they change

    def unavailable():
        groups = port_groups(s)
        status, sense, _ = s.read(0, 8)
        now = (groups, status, sense, shown(1))
        if not seen or seen[-1] != now:
            seen.append(now)
        return now == ({1: (UNAVAILABLE, True)}, 2, UNAVAILABLE_PORT, [(1, "unavailable", True)])

    wait_until(unavailable, lambda: f"node 1 without a lease reports {seen[-3:]}", timeout=30)
    check(({1: (TRANSITIONING, True)}, 2, TRANSITIONING_PORT, [(1, "transitioning", True)])
          in seen, f"node 1 was transitioning before unavailable: {seen}")
    s.close()
    return 0


if __name__ == "__main__":
    run(test)

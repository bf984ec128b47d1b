"""SCSI reservations are cluster state (docs/iscsi.md): a persistent
reservation taken through one node holds on every node's port, at once (the
command is answered only once every node enforces it), through the death
of the holder's node and a restart of the whole cluster; keys follow the
I_T nexus (another ISID is another nexus, whatever the initiator's name);
a preemption is a unit attention for the nexus preempted, on its node; an
SPC-2 RESERVE through one node is a conflict on another's, and ends with
its nexus; a PREEMPT AND ABORT through one node ends the preempted nexus's
task still in the back end on another node (TASK ABORTED) and is answered
only once that task is over; so is a LUN reset, whichever node it comes
through. The initiator is libiscsi itself (iscsi_client.py), three nodes
with nodes 1 and 2 as the vdisk's I/O group.
"""
import struct
import threading
import time

from cluster_harness import iscsi_cluster
from harness import SKIP, check, run, wait_until

try:
    from iscsi_client import GOOD, IscsiSession
except OSError:  # libiscsi7 is not installed
    IscsiSession = None

TARGET = "iqn.2026-12.org.sve:reservations"
RESERVATION_CONFLICT = 0x18
TASK_ABORTED = 0x40
WRITE_EXCLUSIVE, EXCLUSIVE_ACCESS = 1, 3
REGISTRATIONS_PREEMPTED = (6, 0x2a, 0x05)
LUN_RESET_OCCURRED = (6, 0x29, 0x03)


def pr_out(session, action, key=0, action_key=0, kind=0):
    cdb = bytes([0x5f, action, kind, 0, 0]) + (24).to_bytes(4, "big") + bytes(1)
    params = struct.pack(">QQ", key, action_key) + bytes(8)
    return session.command(cdb, data_out=params)[:2]


def transport_id(port, fmt=1):
    """An iSCSI TransportID (SPC-4 7.6.4.6) of initiator port `port`."""
    name = port.encode() + b"\0"
    name += bytes(-len(name) % 4 + max(0, 20 - len(name) - (-len(name) % 4)))
    return bytes([fmt << 6 | 5, 0]) + len(name).to_bytes(2, "big") + name


def register_and_move(session, key, action_key, port, relative_port, unregister, tid=None):
    tid = transport_id(port) if tid is None else tid
    params = struct.pack(">QQ", key, action_key) + bytes([0, 0x02 if unregister else 0]) \
        + relative_port.to_bytes(2, "big") + len(tid).to_bytes(4, "big") + tid
    cdb = bytes([0x5f, 7, 0, 0, 0]) + len(params).to_bytes(4, "big") + bytes(1)
    return session.command(cdb, data_out=params)[:2]


def pr_in(session, action):
    cdb = bytes([0x5e, action]) + bytes(5) + (4096).to_bytes(2, "big") + bytes(1)
    status, sense, data = session.command(cdb, data_in=4096)
    check(status == GOOD, f"PERSISTENT RESERVE IN {action}: {status} {sense}")
    return data


def keys(session):
    data = pr_in(session, 0)
    count = int.from_bytes(data[4:8], "big") // 8
    return sorted(int.from_bytes(data[8 + 8 * i:16 + 8 * i], "big") for i in range(count))


def reservation(session):
    """(holder's key, type), or None."""
    data = pr_in(session, 1)
    if int.from_bytes(data[4:8], "big") < 16:
        return None
    return int.from_bytes(data[8:16], "big"), data[21] & 0x0f


def settled(session, command):
    """The command's (status, sense) once past unit attentions (a new
    session's power-on, a path change) and a port in transition (NOT
    READY while the owner changes), as a multipath host retries them."""
    answer = []

    def final():
        answer[:] = command()[:2]
        status, sense = answer
        return not (status == 2 and sense and sense[0] in (2, 6))
    wait_until(final, lambda: f"a command past unit attentions and transitions: {answer}",
               timeout=30)
    return tuple(answer)


def test(make):
    made = iscsi_cluster(make, 3, TARGET, IscsiSession is not None)
    if made is None:
        return SKIP
    c, portals = made
    c[1].extra += ["--enable-chaos"]  # (an mdisk stalled by hand, in 3b)
    c.form()
    c.group_vdisk("v", 32, 128)

    def session(node, host):
        s = IscsiSession(portals[node], TARGET, 0, initiator=f"iqn.2026-12.test:{host}")
        settled(s, lambda: s.command(bytes(6)))  # TEST UNIT READY past the attentions
        return s

    # 1. A registrant on node 1, the holder on node 2: node 1 refuses the
    # registrant's write at once, and both nodes report the same.
    h1 = session(1, "host1")
    h2 = session(2, "host2")
    check(pr_out(h1, 0, 0, 0xA1) == (GOOD, None), "host1 registers through node 1")
    check(pr_out(h2, 0, 0, 0xB2) == (GOOD, None), "host2 registers through node 2")
    # (Again and again, each node in turn the holder's: a node that applied
    # the change a moment after the holder was told GOOD would let some of
    # these writes through.)
    hosts = {1: (h1, 0xA1), 2: (h2, 0xB2)}
    for round in range(20):
        holder, key = hosts[2 if round % 2 == 0 else 1]
        other = hosts[1 if round % 2 == 0 else 2][0]
        check(pr_out(holder, 1, key, 0, WRITE_EXCLUSIVE) == (GOOD, None),
              f"a reservation (write exclusive), round {round}")
        status, _, _ = other.write(64, b"\x11" * 512)
        check(status == RESERVATION_CONFLICT,
              f"the other node's write right after the reservation (round {round}): {status}")
        check(pr_out(holder, 2, key, 0, WRITE_EXCLUSIVE) == (GOOD, None), "its release")
        status, _, _ = other.write(64, b"\x11" * 512)
        check(status == GOOD, f"the other node's write right after the release (round {round}): "
                              f"{status}")
    check(pr_out(h2, 1, 0xB2, 0, WRITE_EXCLUSIVE) == (GOOD, None),
          "host2 reserves (write exclusive) through node 2")
    check(h2.write(64, b"\x22" * 512)[0] == GOOD, "the holder writes through node 2")
    status, _, data = h1.read(64, 1)
    check(status == GOOD and data == b"\x22" * 512, "a registrant reads under write exclusive")
    for s, node in ((h1, 1), (h2, 2)):
        check(keys(s) == [0xA1, 0xB2], f"node {node} reports both keys: {keys(s)}")
        check(reservation(s) == (0xB2, WRITE_EXCLUSIVE),
              f"node {node} reports host2's reservation: {reservation(s)}")

    # The administrator sees them on any node.
    shown = c[3].ctl_json("vdisk", "show", "v")["reservations"]
    check(shown["type"] == "write_exclusive" and
          [(r["key"], r["holder"]) for r in shown["registrations"]] ==
          [("0x00000000000000a1", False), ("0x00000000000000b2", True)] and
          shown["registrations"][1]["initiator"].startswith("iqn.2026-12.test:host2,i,0x") and
          shown["registrations"][1]["port"] == 2, f"vdisk show's reservations: {shown}")
    text = c[1].ctl("vdisk", "show", "v").stdout
    check("reservations (SCSI): write_exclusive" in text and "0x00000000000000b2" in text,
          f"svectl vdisk show: {text}")

    # 2. Keys follow the I_T nexus: host1 again, another session (another
    # ISID), is not registered.
    other = session(1, "host1")
    # (REGISTER with host1's key: the same nexus would just keep it; another
    # is not registered, and a key from it is a conflict.)
    check(pr_out(other, 0, 0xA1, 0xA1)[0] == RESERVATION_CONFLICT,
          "host1's key does not follow its name into another session")
    full = pr_in(other, 3)
    check(full.count(b"iqn.2026-12.test:host1,i,0x") == 1,
          "READ FULL STATUS names host1's registered nexus (its ISID) once")
    other.close()

    # 3. A preemption through node 1 is a unit attention for the nexus it
    # took the registration of, on node 2.
    h3 = session(2, "host3")
    check(pr_out(h3, 0, 0, 0xC3) == (GOOD, None), "host3 registers through node 2")
    check(pr_out(h1, 4, 0xA1, 0xC3) == (GOOD, None), "host1 preempts host3's registration")
    status, sense, _ = h3.read(0, 1)
    check(status == 2 and sense == REGISTRATIONS_PREEMPTED,
          f"host3 is told its registration was preempted: {status} {sense}")
    check(pr_out(h3, 1, 0xC3, 0, WRITE_EXCLUSIVE)[0] == RESERVATION_CONFLICT,
          "host3 is no longer registered")
    h3.close()

    # 3b. PREEMPT AND ABORT through node 2 of a nexus whose read waits in
    # node 1's back end (stalled for two seconds): the read is answered TASK
    # ABORTED, not with data, and the preemption only once the read is out
    # of the back end (a fencing host relies on this: nothing of the
    # preempted host's reaches the disk after it is told GOOD).
    h5 = session(1, "host5")
    check(pr_out(h5, 0, 0, 0xE5) == (GOOD, None), "host5 registers through node 1")
    stall_s = 2.0
    stalled_at = time.monotonic()
    c[1].ctl("chaos", "inject", "mdisk-stall", "--duration", str(int(stall_s * 1000)))
    answer = []
    reader = threading.Thread(target=lambda: answer.append(h5.read(50000, 8)))
    reader.start()

    def in_back_end():
        stats = c[1].ctl_json("node", "stats")
        return sum(core["requests"]["frontend"]["used"] for core in stats["cores"]) > 0
    wait_until(in_back_end, "host5's read is in node 1's stack", timeout=stall_s * 0.75)
    check(pr_out(h2, 5, 0xB2, 0xE5) == (GOOD, None), "host2 preempts and aborts host5")
    answered_at = time.monotonic()
    reader.join(10)
    check(answer and answer[0][0] == TASK_ABORTED,
          f"host5's read in the back end was aborted: {answer[:1] and answer[0][:2]}")
    check(answered_at >= stalled_at + stall_s,
          f"the preemption was answered {answered_at - stalled_at:.3f} s after the stall began, "
          f"before the aborted read left the back end ({stall_s} s)")
    status, sense, _ = h5.write(64, b"\x55" * 512)
    check(status == 2 and sense == REGISTRATIONS_PREEMPTED,
          f"host5 is told its registration was preempted: {status} {sense}")
    check(h5.write(64, b"\x55" * 512)[0] == RESERVATION_CONFLICT,
          "host5, no longer registered, cannot write under host2's reservation")
    h5.close()

    # 3c. A LUN reset ends every nexus's tasks for the unit (SAM-5), not
    # only the resetting one's: a read of host6's waiting in node 1's
    # stalled back end ends TASK ABORTED when host2 resets the LUN through
    # node 2, then when host1 does through node 1 (the node's own other
    # sessions); the reset is answered only once the read is out of the
    # back end, and host6 is told of it by unit attention.
    h6 = session(1, "host6")
    # (Each round reads blocks nobody read before: the cache has those
    # read in an earlier round.)
    for issuer, via, lba in ((h2, 2, 60000), (h1, 1, 61000)):
        stalled_at = time.monotonic()
        c[1].ctl("chaos", "inject", "mdisk-stall", "--duration", str(int(stall_s * 1000)))
        answer = []
        reader = threading.Thread(target=lambda: answer.append(h6.read(lba, 8)))
        reader.start()
        wait_until(in_back_end, "host6's read is in node 1's stack", timeout=stall_s * 0.75)
        check(issuer.lun_reset() == 0, f"a LUN reset through node {via}")
        answered_at = time.monotonic()
        reader.join(10)
        check(answer and answer[0][0] == TASK_ABORTED,
              f"host6's read in the back end was aborted by the reset through node {via}: "
              f"{answer[:1] and answer[0][:2]}")
        check(answered_at >= stalled_at + stall_s,
              f"the reset through node {via} was answered {answered_at - stalled_at:.3f} s "
              f"after the stall began, before the aborted read left the back end ({stall_s} s)")
        status, sense, _ = h6.read(lba, 8)
        check(status == 2 and sense == LUN_RESET_OCCURRED,
              f"host6 is told of the reset through node {via}: {status} {sense}")
        check(h6.read(lba, 8)[0] == GOOD, "host6 reads again")
    h6.close()

    # 4. The holder's node dies: the reservation holds on the survivor.
    h2.close()
    c[2].kill()
    c.wait_serving([1, 3], 1)
    status, _ = settled(h1, lambda: h1.write(64, b"\x11" * 512))
    check(status == RESERVATION_CONFLICT, f"after node 2 died, host1's write: {status}")
    check(reservation(h1) == (0xB2, WRITE_EXCLUSIVE), "node 1 still reports host2's reservation")
    # Node 3 (no path of the group's vdisk served by it alone) refuses too.
    h4 = session(3, "host4")
    check(settled(h4, lambda: h4.write(64, b"\x44" * 512))[0] == RESERVATION_CONFLICT,
          "an unregistered host's write through node 3 conflicts")
    # Host1 preempts the absent holder and writes.
    check(pr_out(h1, 4, 0xA1, 0xB2, EXCLUSIVE_ACCESS) == (GOOD, None),
          "host1 preempts host2's reservation")
    check(h1.write(64, b"\x11" * 512)[0] == GOOD, "the new holder writes")
    check(settled(h4, lambda: h4.read(64, 1))[0] == RESERVATION_CONFLICT,
          "exclusive access: another host cannot even read")
    h4.close()

    # 5. Node 2 returns; then the whole cluster restarts: the reservation is
    # there each time.
    c.start(2)
    c.wait_serving([1, 2, 3], 1)
    h2 = session(2, "host2")
    check(keys(h2) == [0xA1], f"node 2, back, reports host1's key only: {keys(h2)}")
    check(settled(h2, lambda: h2.read(64, 1))[0] == RESERVATION_CONFLICT,
          "host2's read through node 2 conflicts with host1's exclusive access")
    h1.close()
    h2.close()
    for i in (1, 2, 3):
        c[i].kill()
    for i in (1, 2, 3):
        c.start(i)
    c.wait_serving([1, 2, 3], 1)
    h2 = session(2, "host2")
    check(reservation(h2) == (0xA1, EXCLUSIVE_ACCESS),
          f"after a restart of every node: {reservation(h2)}")
    check(settled(h2, lambda: h2.read(64, 1))[0] == RESERVATION_CONFLICT,
          "and it is enforced")

    # 6. RESERVE(6) through node 1 is a conflict through node 2, until its
    # session ends. (A new host1 nexus clears the persistent state first:
    # it registers, then CLEAR.)
    h1 = session(1, "host1")
    check(pr_out(h1, 6, 0, 0xA9) == (GOOD, None), "host1 registers (and ignores the old key)")
    check(pr_out(h1, 3, 0xA9) == (GOOD, None), "host1 clears every registration")
    check(h1.command(bytes([0x16]) + bytes(5))[0] == GOOD, "host1 RESERVE(6) through node 1")
    check(settled(h2, lambda: h2.read(64, 1))[0] == RESERVATION_CONFLICT,
          "host2's read through node 2 conflicts with host1's RESERVE")
    # A logout is answered once the reservation is gone, on every node.
    check(h1.logout() == 0, "host1 logs out")
    check(h2.read(64, 1)[0] == GOOD, "host2 reads through node 2 right after host1's logout")
    h1 = session(1, "host1")
    check(h1.command(bytes([0x16]) + bytes(5))[0] == GOOD, "host1 RESERVE(6) again")
    check(settled(h2, lambda: h2.read(64, 1))[0] == RESERVATION_CONFLICT,
          "host2's read conflicts again")
    h1.close()  # the nexus is lost (no logout): its reservation ends
    wait_until(lambda: settled(h2, lambda: h2.read(64, 1))[0] == GOOD,
               "host2 reads once host1's session ended")
    h2.close()

    # 7. The administrator clears what a host left: a reservation held
    # through node 2 by a host that is gone ends, through node 3's admin
    # port; node 1's host reads and writes at once, and the host that held
    # it hears RESERVATIONS PREEMPTED.
    h2 = session(2, "host2")
    check(pr_out(h2, 0, 0, 0xB7) == (GOOD, None), "host2 registers again")
    check(pr_out(h2, 1, 0xB7, 0, EXCLUSIVE_ACCESS) == (GOOD, None), "and reserves")
    h1 = session(1, "host1")
    check(settled(h1, lambda: h1.read(64, 1))[0] == RESERVATION_CONFLICT,
          "host1 cannot read under host2's exclusive access")
    # (Node 1's cluster messages to node 2 leave 150 ms late for a while:
    # node 2 learns of the clear that much after the others. The command
    # returns once every node enforces it, node 2 too. The delay stays
    # under the failure detector's 300 ms (six heartbeats of 50 ms): a
    # longer one has node 2 take node 1 for gone, and the generations that
    # follow may lose the command, whose caller is then told it timed out.)
    c[1].ctl("chaos", "inject", "net-delay", "--target", "0", "--duration", "3000",
             "--intensity", "150")
    out = c[3].ctl("vdisk", "clear-reservations", "v").stdout
    check("cleared 1 registration, reservation exclusive_access" in out, out)
    status = h1.read(64, 1)[0]
    check(status == GOOD, f"host1 reads right after the administrator cleared: {status}")
    check(h1.write(64, b"\x77" * 512)[0] == GOOD, "and writes")
    status, sense, _ = h2.read(64, 1)
    check((status, sense) == (2, (6, 0x2a, 0x03)),
          f"host2 is told at once its reservation was preempted: {status} {sense}")
    check(reservation(h2) is None and keys(h2) == [], "no reservation and no key is left")
    shown = c[1].ctl_json("vdisk", "show", "v")["reservations"]
    check(shown["type"] == "none" and shown["registrations"] == [], f"vdisk show: {shown}")
    check("had no reservations" in c[1].ctl("vdisk", "clear-reservations", "v").stdout,
          "a second clear finds nothing")

    # 8. REGISTER AND MOVE: host1, holding through node 1, hands its
    # reservation to host2's nexus on node 2 (named by the TransportID of
    # its initiator port, as vdisk show lists it) and leaves.
    check(pr_out(h2, 0, 0, 0xB8) == (GOOD, None), "host2 registers through node 2")
    check(pr_out(h1, 0, 0, 0xA8) == (GOOD, None), "host1 registers through node 1")
    check(pr_out(h1, 1, 0xA8, 0, WRITE_EXCLUSIVE) == (GOOD, None), "host1 reserves")
    host2 = [r for r in c[1].ctl_json("vdisk", "show", "v")["reservations"]["registrations"]
             if r["initiator"].startswith("iqn.2026-12.test:host2,")][0]
    check(register_and_move(h2, 0xB8, 0xB9, host2["initiator"], 1, False)[0] ==
          RESERVATION_CONFLICT, "a registrant that does not hold the reservation cannot move it")
    check(register_and_move(h1, 0xA8, 0xB9, host2["initiator"], 2, True,
                            tid=transport_id(host2["initiator"], fmt=0)) ==
          (2, (5, 0x26, 0)), "a TransportID without the ISID names no nexus: refused")
    check(register_and_move(h1, 0xA8, 0xB9, host2["initiator"].upper().replace("IQN.2026-12.TEST:HOST2", "iqn.2026-12.test:host2"),
                            host2["port"], True) == (GOOD, None),
          "host1 moves its reservation to host2's nexus (an ISID in capitals is the same)")
    check(reservation(h2) == (0xB9, WRITE_EXCLUSIVE), f"host2 holds it: {reservation(h2)}")
    check(keys(h1) == [0xB9], f"host1 left, host2's key replaced: {keys(h1)}")
    check(h2.write(64, b"\x88" * 512)[0] == GOOD, "the new holder writes through node 2")
    wait_until(lambda: h1.write(64, b"\x11" * 512)[0] == RESERVATION_CONFLICT,
               "host1, no longer registered, meets the conflict")

    # 9. REGISTER with SPEC_I_PT and ALL_TG_PT: host1, through node 1,
    # registers host2's port (logged in to node 2) along with itself; host2
    # then reserves with that key without registering.
    c[1].ctl("vdisk", "clear-reservations", "v")
    wait_until(lambda: h2.read(64, 1)[:2] == (2, (6, 0x2a, 0x03)),
               "the administrator's clear reached node 2: host2 is told")
    check(keys(h2) == [], f"no key is left: {keys(h2)}")
    def spec_i_pt(key, tid):
        """REGISTER with SPEC_I_PT and ALL_TG_PT naming `tid`, through host1."""
        params = struct.pack(">QQ", key, 0xAB) + bytes(4) + bytes([0x0c]) + bytes(3) \
            + len(tid).to_bytes(4, "big") + tid
        cdb = bytes([0x5f, 0, 0, 0, 0]) + len(params).to_bytes(4, "big") + bytes(1)
        return h1.command(cdb, data_out=params)[:2]
    check(spec_i_pt(0, transport_id(host2["initiator"])) == (GOOD, None),
          "host1 registers itself and host2's port (SPEC_I_PT, ALL_TG_PT)")
    check(keys(h2) == [0xAB, 0xAB], f"both registered, seen through node 2: {keys(h2)}")
    check(settled(h2, lambda: pr_out(h2, 1, 0xAB, 0, WRITE_EXCLUSIVE)) == (GOOD, None),
          "host2 reserves with the key host1 registered for it")
    check(reservation(h1) == (0xAB, WRITE_EXCLUSIVE), f"node 1 reports it: {reservation(h1)}")
    check(spec_i_pt(0xAB, transport_id(host2["initiator"])) == (2, (5, 0x26, 0)),
          "SPEC_I_PT from a registered nexus is refused")
    # SPEC_I_PT naming host2's whole initiator device (TransportID format
    # 00b, its name alone): one registration that its port holds, whatever
    # its ISID; READ FULL STATUS gives it back as a device.
    c[1].ctl("vdisk", "clear-reservations", "v")
    for h, who in ((h1, "host1"), (h2, "host2")):
        wait_until(lambda: h.read(64, 1)[:2] == (2, (6, 0x2a, 0x03)),
                   f"the second clear: {who} is told")
    device = host2["initiator"].split(",")[0]
    check(spec_i_pt(0, transport_id(device, fmt=0)) == (GOOD, None),
          "host1 registers itself and host2's device (SPEC_I_PT, format 00b)")
    check(keys(h2) == [0xAB, 0xAB], f"both registered, seen through node 2: {keys(h2)}")
    check(settled(h2, lambda: pr_out(h2, 1, 0xAB, 0, WRITE_EXCLUSIVE)) == (GOOD, None),
          "host2's port reserves with the key its device was registered with")
    full = pr_in(h1, 3)
    at = full.find(device.encode() + b"\0")
    check(at >= 4 and full[at - 4] == 0x05,
          f"READ FULL STATUS gives host2's registration as a device (format 00b): {full.hex()}")
    h1.close()
    h2.close()
    print("reservations held across nodes, a node's death, a restart of all; RESERVE ended "
          "with its session; PREEMPT AND ABORT ended a task in another node's back end; the "
          "administrator cleared one; REGISTER AND MOVE handed one over; SPEC_I_PT registered "
          "another host's port, then its whole device")
    return 0


if __name__ == "__main__":
    run(test)

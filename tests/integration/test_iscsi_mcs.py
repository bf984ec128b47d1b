"""A session of several connections to one node (RFC 7143's MC/S, which
Windows' initiator uses; docs/iscsi.md): a second connection joins the
session by its TSIH, the session's keys answered Irrelevant there; the
connections share one CmdSN window (a command may overtake another still
on its way over the other connection), one I_T nexus (a reservation
registered through one is the other's), and task management and logout
reach across them; a join that names no session of its initiator port, or
one past MaxConnections, is refused; a new session of the same initiator
port ends the old one. Task attributes order a session's commands of a
LUN (ORDERED, HEAD OF QUEUE). No initiator at hand does MC/S: the
connections are driven PDU by PDU (iscsi_raw.py)."""
import struct

from harness import check, free_port, run
from iscsi_raw import (DATA_OUT, LOGOUT, LOGOUT_RESPONSE, NO_TAG, NOP_IN, NOP_OUT, R2T, SCSI_RESPONSE,
                       TASK_MGMT, TASK_MGMT_RESPONSE, Connection, numbers, pdu)

MiB = 1 << 20
TARGET = "iqn.2026-12.org.sve:mcs"
INITIATOR = "iqn.2026-12.test:mcs"
GOOD, CHECK_CONDITION, RESERVATION_CONFLICT = 0, 2, 0x18
SIMPLE, ORDERED, HEAD_OF_QUEUE, ACA = 1, 2, 3, 4


def itt_of(head):
    return int.from_bytes(head[16:20], "big")


def write10(lba, blocks):
    return bytes([0x2a, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") \
        + bytes(1)


def read10(lba, blocks):
    return bytes([0x28, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") \
        + bytes(1)


def response(conn, what):
    """The next PDU on `conn`: a SCSI Response (Data-In before it is
    gathered): (status, data, header)."""
    data = b""
    while True:
        got = conn.receive()
        check(got is not None, f"{what}: the connection closed")
        head, segment = got
        if head[0] & 0x3f == 0x25:  # Data-In
            data += segment
            if head[1] & 0x01:  # with status
                return head[3], data, head
            continue
        check(head[0] & 0x3f == SCSI_RESPONSE, f"{what}: a SCSI Response, got {head.hex()}")
        return head[3], data, head


def ping(conn, itt):
    conn.send(pdu(0x40 | NOP_OUT, 0x80, itt=itt, at20=NO_TAG.to_bytes(4, "big")))
    got = conn.receive()
    check(got is not None and got[0][0] & 0x3f == NOP_IN, f"a NOP-In on connection {conn.cid}")
    return got[0]


def logout(conn, itt, cmd_sn, reason, cid):
    conn.send(pdu(LOGOUT, 0x80 | reason, itt=itt, at20=cid.to_bytes(2, "big") + bytes(2),
                  fields=cmd_sn.to_bytes(4, "big")))
    got = conn.receive()
    check(got is not None and got[0][0] & 0x3f == LOGOUT_RESPONSE, "a Logout Response")
    return got[0][2]


def test(make):
    node = make()
    port = free_port()
    node.start(["--iscsi", f"127.0.0.1:{port}", "--iscsi-target", TARGET])
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 64 * MiB))
    node.ctl("pool", "create", "p0", "--extent-size", "1M", "m0")
    node.ctl("vdisk", "create", "v0", "--pool", "p0", "--size", "16M")

    # The leading connection: MaxConnections agreed, a TSIH.
    keys = "MaxConnections=3\0ImmediateData=Yes\0MaxBurstLength=262144\0"
    a = Connection(port, TARGET, INITIATOR, cid=0, keys=keys)
    check(a.status == 0 and a.tsih != 0, f"the leading login: {a.status:#x} TSIH {a.tsih}")
    check(a.keys.get("MaxConnections") == "3", f"MaxConnections agreed: {a.keys}")
    cmd_sn = a.exp_cmd_sn
    ping(a, 1)  # (serving: its session is known)
    # A second connection joins by the TSIH; the session's keys are not
    # negotiated again.
    b = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=1, cmd_sn=cmd_sn,
                   keys="MaxBurstLength=8192\0MaxRecvDataSegmentLength=65536\0")
    check(b.status == 0 and b.tsih == a.tsih, f"the second login: {b.status:#x} TSIH {b.tsih}")
    check(b.keys.get("MaxBurstLength") == "Irrelevant",
          f"a session's key on a second connection is Irrelevant: {b.keys}")
    ping(b, 2)
    stats = node.ctl_json("node", "stats")
    check(stats["iscsi_connections"] == 2 and stats["iscsi_sessions"] == 1,
          f"node stats: two connections, one session: {stats['iscsi_connections']} "
          f"{stats['iscsi_sessions']}")

    # One window: commands alternate connections in CmdSN order...
    block = bytes(range(256)) * 2
    a.command(cmd_sn, write10(8, 1), itt=10, data_out=block)
    check(response(a, "a write through A")[0] == GOOD, "a write through A")
    b.command(cmd_sn + 1, read10(8, 1), itt=11, expected=512)
    status, data, head = response(b, "a read through B")
    check(status == GOOD and data == block, "B reads what A wrote")
    check(numbers(head)[1] == cmd_sn + 2, f"ExpCmdSN counts both: {numbers(head)}")
    cmd_sn += 2
    # ...and one may overtake another: B's command runs although A's, before
    # it, has not come; ExpCmdSN moves past both once A's comes.
    b.command(cmd_sn + 1, write10(9, 1), itt=12, data_out=b"\xbb" * 512)
    status, _, head = response(b, "B's write ahead of order")
    check(status == GOOD and numbers(head)[1] == cmd_sn,
          f"taken ahead of order, ExpCmdSN waits for the gap: {status} {numbers(head)}")
    a.command(cmd_sn, write10(10, 1), itt=13, data_out=b"\xaa" * 512)
    status, _, head = response(a, "A's write, the gap")
    check(status == GOOD and numbers(head)[1] == cmd_sn + 2,
          f"ExpCmdSN past both: {status} {numbers(head)}")
    # The same command again (a CmdSN already received) is ignored.
    b.command(cmd_sn + 1, read10(9, 1), itt=14, expected=512)
    check(ping(b, 15) is not None, "a CmdSN received before is ignored (the NOP-In comes next)")
    cmd_sn += 2
    # An ORDERED command ahead of a gap waits for it: B's ORDERED read comes
    # before the CmdSN in front of it, and is held (B's NOP-In comes first);
    # the gap is a NOP-Out through A (not a SCSI command: it joins no task
    # set), and once it is in, the read runs.
    b.command(cmd_sn + 1, read10(9, 1), itt=16, expected=512, attribute=ORDERED)
    ping(b, 17)
    a.send(pdu(NOP_OUT, 0x80, itt=18, at20=NO_TAG.to_bytes(4, "big"),
               fields=cmd_sn.to_bytes(4, "big")))
    got = a.receive()
    check(got is not None and got[0][0] & 0x3f == NOP_IN, "the NOP-Out in the gap is answered")
    status, data, _ = response(b, "B's ORDERED read after the gap")
    check(status == GOOD and data == b"\xbb" * 512, "the ORDERED read ran once the gap was in")
    cmd_sn += 2

    # One I_T nexus: a key registered through A, the reservation taken
    # through B with it.
    register = bytes([0x5f, 0, 0, 0, 0]) + (24).to_bytes(4, "big") + bytes(1)
    a.command(cmd_sn, register + bytes(6), itt=20, data_out=struct.pack(">QQ", 0, 0x77) + bytes(8))
    check(response(a, "REGISTER through A")[0] == GOOD, "REGISTER through A")
    reserve = bytes([0x5f, 1, 1, 0, 0]) + (24).to_bytes(4, "big") + bytes(1)
    b.command(cmd_sn + 1, reserve + bytes(6), itt=21,
              data_out=struct.pack(">QQ", 0x77, 0) + bytes(8))
    check(response(b, "RESERVE through B")[0] == GOOD,
          "B reserves with the key A registered: the same nexus")
    cmd_sn += 2
    # Another session (another ISID: another nexus) meets the reservation.
    other = Connection(port, TARGET, INITIATOR, isid=b"\x80\x00\x00\x00\x99\x99", cid=0)
    other.command(other.exp_cmd_sn, write10(11, 1), itt=1, data_out=bytes(512))
    check(response(other, "another nexus's write")[0] == RESERVATION_CONFLICT,
          "another nexus's write is a reservation conflict")
    other.close()

    # Task management from one connection reaches a task on the other: a
    # write through A waits for its data (no immediate data: an R2T), B
    # aborts it; A never answers it.
    a.command(cmd_sn, write10(12, 1), itt=30, expected=512, write=True)
    got = a.receive()
    check(got is not None and got[0][0] & 0x3f == R2T, "the write waits for its data (R2T)")
    r2t_head = got[0]
    abort = pdu(0x40 | TASK_MGMT, 0x80 | 1, itt=31,
                at20=(30).to_bytes(4, "big"),
                fields=(cmd_sn + 1).to_bytes(4, "big") + bytes(4) + cmd_sn.to_bytes(4, "big"))
    b.send(abort)
    got = b.receive()
    check(got is not None and got[0][0] & 0x3f == TASK_MGMT_RESPONSE and got[0][2] == 0,
          f"ABORT TASK through B of A's task: Function complete ({got and got[0].hex()})")
    r2t = r2t_head
    # Its data, sent after all, is dropped: the next thing on A is the
    # NOP-In, the write never answered, the block never written.
    data_out = bytearray(pdu(DATA_OUT, 0x80, b"\xee" * 512, itt=30, at20=r2t[20:24]))
    a.send(bytes(data_out))
    ping(a, 32)
    cmd_sn += 1
    b.command(cmd_sn, read10(12, 1), itt=33, expected=512)
    check(response(b, "the aborted write's block")[:2] == (GOOD, bytes(512)),
          "the aborted write wrote nothing")
    cmd_sn += 1

    # Joins refused: a TSIH that is no session, another initiator port's
    # session, one past MaxConnections.
    for tsih, isid, why in ((a.tsih ^ 0x5555, a.isid, "no such session"),
                            (a.tsih, b"\x80\x00\x00\x00\x77\x77", "another initiator port's")):
        c = Connection(port, TARGET, INITIATOR, isid=isid, tsih=tsih, cid=5, cmd_sn=cmd_sn)
        check(c.status == 0x020a, f"a join to {why}: session does not exist ({c.status:#x})")
        c.close()
    c = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=2, cmd_sn=cmd_sn)
    check(c.status == 0, f"a third connection ({c.status:#x})")
    d = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=3, cmd_sn=cmd_sn)
    check(d.status == 0x0206, f"a fourth, past MaxConnections=3: too many ({d.status:#x})")
    d.close()
    # A login with the CID of a connection the full session has replaces
    # it (connection reinstatement): it takes no more room.
    again = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=2, cmd_sn=cmd_sn)
    check(again.status == 0, f"connection 2 reinstated in a full session ({again.status:#x})")
    check(c.closed(), "the connection it replaces is closed by the target")
    c = again

    # Logout of another connection by its CID: it closes, the one asking
    # stays; a CID not in the session is "not found". Sent the moment the
    # join is answered, as here, it may reach the core before the port has
    # handed that connection over: it counts all the same (rounds of it).
    check(logout(a, 40, cmd_sn, 1, 2) == 0, "A logs out connection 2")
    check(c.closed(), "connection 2 is closed by the target")
    check(logout(a, 41, cmd_sn + 1, 1, 9) == 1, "a CID not in the session: CID not found")
    check(logout(a, 42, cmd_sn + 2, 2, 0) == 2, "removal for recovery is not supported")
    cmd_sn += 3
    for r in range(40):
        c = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=2, cmd_sn=cmd_sn)
        check(c.status == 0, f"round {r}: connection 2 joins again ({c.status:#x})")
        check(logout(a, 100 + r, cmd_sn, 1, 2) == 0, f"round {r}: A logs out connection 2 at once")
        check(c.closed(), f"round {r}: connection 2 is closed by the target")
        cmd_sn += 1
    ping(a, 43)
    ping(b, 44)
    # A connection that fails ends alone: its session goes on on the other.
    b.close()
    a.command(cmd_sn, read10(8, 1), itt=45, expected=512)
    check(response(a, "a read after B left")[:2] == (GOOD, block), "A serves on after B failed")
    cmd_sn += 1

    # Logout of the session (reason 0) closes every connection of it.
    b = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=1, cmd_sn=cmd_sn)
    check(b.status == 0, f"B joins again ({b.status:#x})")
    ping(b, 50)
    # A login with the CID of a connection the session has replaces it
    # (connection reinstatement): the old one is closed.
    old_b = b
    b = Connection(port, TARGET, INITIATOR, tsih=a.tsih, cid=1, cmd_sn=cmd_sn)
    check(b.status == 0 and old_b.closed(), "connection 1 again: the old one is closed")
    ping(b, 52)
    check(logout(a, 51, cmd_sn, 0, 0) == 0, "the session logs out")
    check(a.closed() and b.closed(), "both its connections close")

    # Task attributes (SAM-5 8.6; a task set per I_T nexus, the control
    # page's TST 001b): a SIMPLE write waits for its data; an ORDERED read of
    # its block is held until the write is answered, a SIMPLE read sent
    # after the ORDERED one waits behind it, and a HEAD OF QUEUE read runs
    # at once. Once the data comes they are answered in that order, the
    # ORDERED read with the written block.
    o = Connection(port, TARGET, INITIATOR, cid=0)
    sn = o.exp_cmd_sn
    o.command(sn, write10(20, 1), itt=70, expected=512, write=True, attribute=SIMPLE)
    got = o.receive()
    check(got is not None and got[0][0] & 0x3f == R2T, "the SIMPLE write waits for its data")
    r2t = got[0]
    o.command(sn + 1, read10(20, 1), itt=71, expected=512, attribute=ORDERED)
    o.command(sn + 2, read10(21, 1), itt=72, expected=512, attribute=SIMPLE)
    o.command(sn + 3, read10(22, 1), itt=73, expected=512, attribute=HEAD_OF_QUEUE)
    status, _, head = response(o, "the HEAD OF QUEUE read")
    check(status == GOOD and itt_of(head) == 73,
          f"the HEAD OF QUEUE read is answered first (ITT {itt_of(head)})")
    ping(o, 74)  # (nothing else came: the ORDERED read and the one after it are held)
    o.send(pdu(DATA_OUT, 0x80, b"\x99" * 512, itt=70, at20=r2t[20:24]))
    order = []
    for _ in range(3):
        status, data, head = response(o, "the held commands")
        check(status == GOOD, f"ITT {itt_of(head)}: status {status:#x}")
        order.append(itt_of(head))
        if itt_of(head) == 71:
            check(data == b"\x99" * 512, "the ORDERED read did not read the write before it")
    check(order == [70, 71, 72], f"answered in the order the attributes say: {order}")
    # No ACA here (INQUIRY's NormACA is 0): a command with the ACA attribute
    # is refused, INVALID FIELD IN CDB (as LIO does), its immediate data
    # dropped, and the session goes on; so is one whose CONTROL byte asks
    # for ACA (NACA).
    o.command(sn + 4, write10(24, 1), itt=75, data_out=b"\x55" * 512, attribute=ACA)
    o.command(sn + 5, read10(24, 1)[:9] + bytes([0x04]), itt=76, expected=512, attribute=SIMPLE)
    for itt in (75, 76):
        got = o.receive()
        check(got is not None and got[0][0] & 0x3f == SCSI_RESPONSE, f"ITT {itt}: a SCSI Response")
        head, sense = got  # (SenseLength, then fixed-format sense data)
        check(head[3] == CHECK_CONDITION and itt_of(head) == itt and len(sense) >= 16
              and sense[4] & 0x0f == 5 and sense[14] == 0x24,
              f"ITT {itt}: ILLEGAL REQUEST, INVALID FIELD IN CDB ({head[3]:#x} {sense.hex()})")
    o.command(sn + 6, read10(24, 1), itt=77, expected=512, attribute=SIMPLE)
    status, data, _ = response(o, "a read after them")
    check(status == GOOD and data != b"\x55" * 512, "the refused write wrote nothing")
    o.close()

    # A join sent the moment the leading login is answered: the answer goes
    # out before the session is registered, and the join waits for that
    # (it was refused 0x020a when it came first). Racy by nature: repeated.
    for i in range(40):
        lead = Connection(port, TARGET, INITIATOR, cid=0, keys="MaxConnections=2\0")
        join = Connection(port, TARGET, INITIATOR, tsih=lead.tsih, cid=1, cmd_sn=lead.exp_cmd_sn)
        check(lead.status == 0 and join.status == 0,
              f"round {i}: a join right after its leading login ({join.status:#x})")
        lead.close()
        join.close()

    # A new session of an initiator port ends its old one (reinstatement).
    old = Connection(port, TARGET, INITIATOR, cid=0)
    ping(old, 60)
    new = Connection(port, TARGET, INITIATOR, cid=0)
    check(new.status == 0 and new.tsih != old.tsih, "a new session of the same initiator port")
    check(old.closed(), "the old session's connection is closed")
    ping(new, 61)
    # The reservation is the nexus's (the initiator port's), not the
    # session's: the new session holds it and releases it.
    release = bytes([0x5f, 2, 1, 0, 0]) + (24).to_bytes(4, "big") + bytes(1)
    new.command(new.exp_cmd_sn, release + bytes(6), itt=62,
                data_out=struct.pack(">QQ", 0x77, 0) + bytes(8))
    check(response(new, "RELEASE")[0] == GOOD, "the new session releases the nexus's reservation")
    new.close()
    check("terminate called" not in node.read_log(), "the node did not crash")
    # Nothing of it (the refused joins, the logouts, the reinstatements)
    # took the I/O process down: its supervisor would have restarted it.
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"no restart: {status}")
    print("iscsi MC/S: two connections in a session, window, nexus, task management, "
          "logout and reinstatement as expected")


if __name__ == "__main__":
    run(test)

"""An iSCSI connection by hand, PDU by PDU, for what no initiator at hand
does: a session of several connections (RFC 7143's MC/S; libiscsi and
open-iscsi have one connection per session), commands sent out of CmdSN
order across them, task management and logout reaching from one
connection to another. Plain sockets; no digests."""
import socket

from harness import check

LOGIN, LOGIN_RESPONSE = 0x03, 0x23
SCSI_COMMAND, SCSI_RESPONSE = 0x01, 0x21
NOP_OUT, NOP_IN = 0x00, 0x20
TASK_MGMT, TASK_MGMT_RESPONSE = 0x02, 0x22
LOGOUT, LOGOUT_RESPONSE = 0x06, 0x26
DATA_OUT, DATA_IN, R2T = 0x05, 0x25, 0x31
NO_TAG = 0xFFFFFFFF


def pdu(opcode, flags=0, data=b"", itt=1, lun=0, fields=b"", at20=b""):
    """A basic header (bytes 20 on: `at20`, 24 on: `fields`) and its data."""
    bhs = bytearray(48)
    bhs[0] = opcode
    bhs[1] = flags
    bhs[5:8] = len(data).to_bytes(3, "big")
    bhs[8:16] = bytes([0, lun, 0, 0, 0, 0, 0, 0])
    bhs[16:20] = itt.to_bytes(4, "big")
    bhs[20:20 + len(at20)] = at20
    bhs[24:24 + len(fields)] = fields
    return bytes(bhs) + data + b"\0" * (-len(data) % 4)


class Connection:
    """One TCP connection of a session: its login, then PDUs."""

    def __init__(self, port, target, initiator, isid=b"\x80\x00\x00\x00\x12\x34", tsih=0,
                 cid=0, cmd_sn=1, keys="", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(timeout)
        self.isid, self.cid = isid, cid
        text = (f"InitiatorName={initiator}\0TargetName={target}\0SessionType=Normal\0"
                f"{keys}").encode()
        # Straight to the full-feature phase: CSG 1 (operational), NSG 3.
        login = bytearray(pdu(0x40 | LOGIN, 0x87, text, itt=cid + 1,
                              at20=cid.to_bytes(2, "big") + bytes(2)))
        login[8:14] = isid
        login[14:16] = tsih.to_bytes(2, "big")
        login[24:28] = cmd_sn.to_bytes(4, "big")
        self.sock.sendall(bytes(login))
        head, data = self.receive()
        check(head[0] & 0x3f == LOGIN_RESPONSE, f"a login response: {head.hex()}")
        self.status = int.from_bytes(head[36:38], "big")
        self.tsih = int.from_bytes(head[14:16], "big")
        self.exp_cmd_sn = int.from_bytes(head[28:32], "big")
        self.keys = dict(p.split("=", 1) for p in data.decode().split("\0") if "=" in p)

    def receive(self):
        """The next PDU's header and data segment (padding dropped), or
        None if the target closed the connection."""
        try:
            head = self._exact(48)
            length = int.from_bytes(head[5:8], "big")
            return head, self._exact((length + 3) & ~3)[:length]
        except (ConnectionError, OSError):
            return None

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def send(self, data):
        self.sock.sendall(data)

    def command(self, cmd_sn, cdb, itt, lun=0, data_out=b"", expected=None, write=False,
                attribute=0):
        """A SCSI Command (its data immediate, all of it); `attribute`: its
        task attribute (0 untagged, 1 SIMPLE, 2 ORDERED, 3 HEAD OF QUEUE)."""
        expected = len(data_out) if expected is None else expected
        flags = 0x80 | (0x20 if write or data_out else 0x40 if expected else 0) | attribute
        cmd = bytearray(pdu(SCSI_COMMAND, flags, data_out, itt=itt, lun=lun,
                            at20=expected.to_bytes(4, "big")))
        cmd[24:28] = cmd_sn.to_bytes(4, "big")
        cmd[32:32 + len(cdb)] = cdb
        self.send(bytes(cmd))

    def closed(self):
        """Whether the target closed this connection (nothing more comes)."""
        try:
            self.sock.settimeout(10)
            while True:
                if not self.sock.recv(4096):
                    return True
        except ConnectionResetError:
            return True
        except OSError:
            return False

    def close(self):
        self.sock.close()


def numbers(head):
    """(StatSN, ExpCmdSN, MaxCmdSN) of a response."""
    return tuple(int.from_bytes(head[i:i + 4], "big") for i in (24, 28, 32))

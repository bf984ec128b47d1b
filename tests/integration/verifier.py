"""The verifying writer of the fault tests: writes 4 KiB blocks over NBD,
each stamped with its own address and a generation number and filled with a
pattern derived from both, several writes in flight, and records which
writes the node acknowledged. A block has at most one write in flight, so
its generations are acknowledged in order.

When a write fails, or the connection drops, the writer reconnects (to the
next node in its list, as a host fails over) and goes on. A write that got
no answer may or may not have landed: it is remembered as possible.

move_to() switches the writer to another range of blocks: after a fault,
so that writes which follow cannot overwrite, and so hide, a block the
fault lost.

verify() then reads every block back and checks that each holds its last
acknowledged generation, or a later one that was sent: an acknowledged write
lost, or anything else found (another block's data, a torn block), is an
error.

The writer fails its test (stop() raises) on what a fault cannot explain:
a reply with bad magic or an unknown cookie (a protocol violation), an
error status not in `errors` (by default none: pass errors=(EIO,) where a
fault may fail requests), or never getting a connection for 60 s."""
import errno
import random
import socket
import struct
import threading
import time

from harness import RawNbd

BLOCK = 4096
MAGIC = 0x5356455645524946  # "SVEVERIF"
CMD_READ, CMD_WRITE, CMD_FLUSH = 0, 1, 3


def payload(block, gen):
    head = struct.pack(">QQQ", MAGIC, block, gen)
    fill = struct.pack(">Q", (block * 1000003 + gen * 7919) & 0xFFFFFFFFFFFFFFFF)
    return head + fill * ((BLOCK - len(head)) // 8)


def decode(data, block):
    """The generation a block holds: 0 for zeroes, None if it is not one of ours."""
    if data == bytes(BLOCK):
        return 0
    magic, addr, gen = struct.unpack(">QQQ", data[:24])
    if magic != MAGIC or addr != block or data != payload(block, gen):
        return None
    return gen


class VerifyingWriter:
    def __init__(self, ports, export, blocks, seed, depth=8, after=None, errors=()):
        """`after`: an earlier writer of the same blocks, whose record this
        one continues. `errors`: the errno values a reply may carry."""
        self.ports = list(ports)
        self.export = export
        self.blocks = blocks  # blocks [0, blocks) are verified
        self.range = (0, blocks)  # where it writes now
        self.rng = random.Random(seed)
        self.depth = depth
        self.acked = dict(after.acked) if after else {}  # block -> last acknowledged generation
        self.sent = {b: set(g) for b, g in after.sent.items()} if after else {}  # every one sent
        self.next_gen = after.next_gen if after else 1
        self.writes_acked = 0
        self.failures = 0    # errors and lost connections it rode through
        self.errors_allowed = set(errors)
        self.errors_seen = {}  # errno -> count
        self.violations = []   # what no fault explains: the test fails
        self.connections = 0
        self.stop_flag = threading.Event()
        self.thread = None
        self.port_index = 0

    def _connect(self, deadline):
        while time.monotonic() < deadline and not self.stop_flag.is_set():
            port = self.ports[self.port_index % len(self.ports)]
            try:
                conn = RawNbd(port, self.export)
                conn.s.settimeout(30)
                self.connections += 1
                return conn
            except (OSError, AssertionError, ConnectionError):
                self.port_index += 1
                # Next node after a short pause, at once if told to stop.
                self.stop_flag.wait(0.05)
        return None

    def _run(self):
        conn = None
        in_flight = {}  # cookie -> (block, gen)
        cookie = 0
        while not self.stop_flag.is_set():
            if conn is None:
                conn = self._connect(time.monotonic() + 60)
                if conn is None:
                    if not self.stop_flag.is_set():
                        self.violations.append("no node took a connection for 60 s")
                    return
            try:
                while len(in_flight) < self.depth and not self.stop_flag.is_set():
                    busy = {b for b, _ in in_flight.values()}
                    first, count = self.range
                    block = first + self.rng.randrange(count)
                    if block in busy:
                        continue
                    gen = self.next_gen
                    self.next_gen += 1
                    cookie += 1
                    self.sent.setdefault(block, set()).add(gen)
                    in_flight[cookie] = (block, gen)
                    conn.request(CMD_WRITE, block * BLOCK, BLOCK, payload(block, gen), cookie=cookie)
                if not in_flight:
                    continue
                if not self._take_reply(conn, in_flight):
                    return
            except (OSError, ConnectionError):
                # The node went away: what was in flight may or may not have
                # landed. Go on through the other node.
                self.failures += 1
                in_flight.clear()
                try:
                    conn.close()
                except OSError:
                    pass
                conn = None
                self.port_index += 1
        if conn is not None:
            try:
                while in_flight and self._take_reply(conn, in_flight):
                    pass
            except (OSError, ConnectionError):
                pass
            conn.close()

    def _take_reply(self, conn, in_flight):
        """One reply; False (and a violation) when it breaks the protocol."""
        try:
            error, got, _ = conn.reply()
        except AssertionError as e:
            self.violations.append(f"reply with bad magic {e}")
            return False
        if got not in in_flight:
            self.violations.append(f"reply to cookie {got}, which is not in flight")
            return False
        block, gen = in_flight.pop(got)
        if error == 0:
            self.acked[block] = max(self.acked.get(block, 0), gen)
            self.writes_acked += 1
            return True
        self.failures += 1
        self.errors_seen[error] = self.errors_seen.get(error, 0) + 1
        if error not in self.errors_allowed:
            self.violations.append(f"write of block {block} failed with "
                                   f"{errno.errorcode.get(error, error)}, which no fault explains")
            return False
        return True

    def move_to(self, first, count):
        assert first + count <= self.blocks
        self.range = (first, count)

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the verifying writer did not stop"
        assert not self.violations, f"the verifying writer saw: {self.violations[:5]}"
        assert self.connections > 0, "the verifying writer never connected"


def read_all(port, export, blocks, chunk=256):
    conn = RawNbd(port, export)
    conn.s.settimeout(60)
    out = []
    try:
        for first in range(0, blocks, chunk):
            n = min(chunk, blocks - first)
            conn.request(CMD_READ, first * BLOCK, n * BLOCK, cookie=first + 1)
            error, _, data = conn.reply(n * BLOCK)
            if error:
                raise AssertionError(f"read of blocks {first}..{first + n - 1} failed: errno {error}")
            out.extend(data[i * BLOCK:(i + 1) * BLOCK] for i in range(n))
    finally:
        conn.close()
    return out


def verify(writer, port, export):
    """Every acknowledged write, read back through the node at `port`.
    Returns (acknowledged writes lost, wrong reads) with examples."""
    data = read_all(port, export, writer.blocks)
    lost, wrong = [], []
    for block in range(writer.blocks):
        gen = decode(data[block], block)
        acked = writer.acked.get(block, 0)
        if gen is None:
            wrong.append(f"block {block}: not a block this writer wrote")
        elif gen < acked:
            lost.append(f"block {block}: holds generation {gen}, generation {acked} was acknowledged")
        elif gen > acked and gen not in writer.sent.get(block, ()):
            wrong.append(f"block {block}: generation {gen} was never written")
    return lost, wrong


def check_writes(writer, nodes, what, export="v"):
    """Every acknowledged write reads back exactly through each of `nodes`."""
    from harness import check
    for node in nodes:
        lost, wrong = verify(writer, node.nbd_port, export)
        check(not lost and not wrong,
              f"{what}, read through node {node.node_id}: {len(lost)} acknowledged writes lost, "
              f"{len(wrong)} wrong blocks: {(lost + wrong)[:5]}")
    check(writer.writes_acked > 0, f"{what}: no write was acknowledged")
    print(f"{what}: {writer.writes_acked} writes acknowledged, {writer.failures} failures ridden "
          f"through (errors {writer.errors_seen}), all read back from nodes "
          f"{[n.node_id for n in nodes]}")

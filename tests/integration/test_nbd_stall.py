"""A host that stalls in its NBD handshake is closed (sved
--handshake-timeout): one that stops half-way through an option, and one
that sends option after option and never takes a reply. Each held a
handshake thread and a connection slot for ever before (the fuzzer's
nbd_handshake campaign found the second). Hosts that reset their
connection while the node both sends to them and waits for their next
request are let go too. Meanwhile, and afterwards, the node serves other
hosts, and the slots come back."""
import select
import socket
import struct
import time

from harness import check, qemu_io, run, wait_until

MiB = 1 << 20
IHAVEOPT, OPT_LIST, FIXED_NEWSTYLE = 0x49484156454F5054, 3, 1
OPT_GO, REP_ACK, REQUEST_MAGIC, CMD_READ = 7, 1, 0x25609513, 0


def recv_exact(s, n, what):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        check(chunk, f"the node closed the connection during {what}")
        data += chunk
    return data


def greeted(node, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", node.nbd_port))
    s.settimeout(10)
    recv_exact(s, 18, "the greeting")
    s.sendall(struct.pack(">I", FIXED_NEWSTYLE))
    return s


def closed_by_server(s, within):
    """Whether the server ends the connection within `within` seconds,
    without this end reading what it sent."""
    p = select.poll()
    p.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for _, events in p.poll(200):
            if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                return True
    return False


def opened(node, name, rcvbuf):
    """A connection past OPT_GO on vdisk `name`, in the transmission phase."""
    s = greeted(node, rcvbuf)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 4 + len(name) + 2) +
              struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0))
    while True:
        _, _, kind, length = struct.unpack(">QIII", recv_exact(s, 20, "OPT_GO"))
        recv_exact(s, length, "OPT_GO")
        if kind == REP_ACK:
            return s
        check(kind < 0x80000000, f"OPT_GO refused: {kind:#x}")


def stuffed_then_reset(node, name):
    """Reads asked for and their replies never taken, so that the node's
    send waits while its next receive waits too; then a reset, which ends
    both at once in either order. False if the node had no slot free (the
    sessions of earlier resets may still be closing)."""
    try:
        s = opened(node, name, 4096)
    except (AssertionError, OSError):
        return False
    for cookie in range(8):
        s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, cookie, 0, 1 * MiB))
    check(select.select([s], [], [], 10)[0], "the node answers the reads")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return True


def four_get_in(node):
    """Whether four hosts at once (the limit) get in and are answered."""
    hosts = []
    try:
        for _ in range(4):
            hosts.append(greeted(node))
        for h in hosts:
            h.sendall(struct.pack(">QII", IHAVEOPT, OPT_LIST, 0))
            head = recv_exact(h, 20, "a list")
            check(struct.unpack(">QIII", head)[2] == 2, "no list reply")
        return True
    except (AssertionError, OSError):
        return False
    finally:
        for h in hosts:
            h.close()


def test(make):
    node = make().start(["--handshake-timeout", "1", "--max-connections", "4"])
    node.ctl("mdisk", "add", "m", node.make_file("m.img", 64 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "4M", "m")
    names = [f"a-vdisk-with-a-long-name-{i:03}" for i in range(8)]
    for n in names:
        node.ctl("vdisk", "create", n, "--pool", "p", "--size", "4M")

    # Half an option, then nothing.
    half = greeted(node)
    half.sendall(struct.pack(">Q", IHAVEOPT))
    # Lists asked for, replies never taken (a small receive buffer, so that
    # the node's writes fill what lies between).
    flood = greeted(node, rcvbuf=4096)
    flood.setblocking(False)
    ask = struct.pack(">QII", IHAVEOPT, OPT_LIST, 0) * 4096
    sent, start = 0, time.monotonic()
    while sent < 64 * len(ask) and time.monotonic() - start < 10:
        try:
            sent += flood.send(ask)
        except BlockingIOError:
            if select.select([], [flood], [], 0.5)[1] == []:
                break  # the node stopped reading: it is stuck writing to us
        except (ConnectionResetError, BrokenPipeError):
            break
    check(closed_by_server(half, 10), "a host stalled half-way through an option was not closed")
    check(closed_by_server(flood, 10), "a host that takes no replies was not closed")
    # Hosts that reset their connection while the node waits both to send
    # to them and to receive from them: each session ends whichever wait
    # ends first (a session that missed the second end held its slot).
    # (A session that never finished would hold its slot for good: after
    # four of them, no round gets in.)
    for i in range(8):
        wait_until(lambda: stuffed_then_reset(node, names[1]), f"a free slot for reset host {i}")
    # The slots came back: four hosts at once (the limit) all get in.
    wait_until(lambda: four_get_in(node), "four hosts to get in after the stalled ones left")
    wait_until(lambda: qemu_io(node.url(names[0]), "write -P 0x11 0 64k", ok=False).returncode == 0,
               "a host to be served after the stalled ones")
    qemu_io(node.url(names[0]), "read -P 0x11 0 64k")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")
    print("nbd stall: stalled hosts closed, slots back, others served")


if __name__ == "__main__":
    run(test)

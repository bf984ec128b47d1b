"""A host that stalls in its NBD handshake is closed (sved
--handshake-timeout): one that stops half-way through an option, and one
that sends option after option and never takes a reply. Each held a
handshake thread and a connection slot for ever before (the fuzzer's
nbd_handshake campaign found the second). Meanwhile, and afterwards, the
node serves other hosts, and the slots come back."""
import select
import socket
import struct
import time

from harness import check, qemu_io, run, wait_until

MiB = 1 << 20
IHAVEOPT, OPT_LIST, FIXED_NEWSTYLE = 0x49484156454F5054, 3, 1


def greeted(node, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", node.nbd_port))
    s.settimeout(10)
    greeting = b""
    while len(greeting) < 18:
        greeting += s.recv(18 - len(greeting))
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
    # The slots came back: four hosts at once (the limit) all get in.
    hosts = [greeted(node) for _ in range(4)]
    for h in hosts:
        h.sendall(struct.pack(">QII", IHAVEOPT, OPT_LIST, 0))
        head = b""
        while len(head) < 20:
            head += h.recv(20 - len(head))
        check(struct.unpack(">QIII", head)[2] == 2, "no list reply after the stalled hosts left")
        h.close()
    wait_until(lambda: qemu_io(node.url(names[0]), "write -P 0x11 0 64k", ok=False).returncode == 0,
               "a host to be served after the stalled ones")
    qemu_io(node.url(names[0]), "read -P 0x11 0 64k")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")
    print("nbd stall: stalled hosts closed, slots back, others served")


if __name__ == "__main__":
    run(test)

"""Hosts and vdisk mappings over NBD, with real clients (nbdinfo,
python3-libnbd). Plain-text hosts are known by the address they connect
from (nbd-server's authfile rule); clients here bind 127.0.0.2 and
127.0.0.3 as two hosts. With no hosts, loopback clients reach every vdisk
(the demo); once hosts exist an unknown client sees nothing and its open
connection is closed; each host lists and opens only its own vdisks; a
read-only mapping refuses writes on the server (EPERM) even from a client
that ignores the read-only flag; unmapping a vdisk closes the host's
connections to it and no others; a mapped vdisk is not deleted; the node
serves on throughout (no restart of its I/O process)."""
import json
import socket
import struct
import subprocess

from harness import check, run, wait_until
from libnbd_client import alive, nbd

MiB = 1 << 20


def bound_socket(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def as_host(node, source, export=None):
    """A libnbd handle from `source`, in option mode (export None) or open."""
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_socket(bound_socket(node.nbd_port, source).detach())  # (libnbd owns it)
    if export is not None:
        h.set_export_name(export)
        h.opt_go()
    return h


def listed(node, source):
    names = []
    h = as_host(node, source)
    h.opt_list(lambda name, description: names.append(name))
    h.opt_abort()
    return sorted(names)


def opens(node, source, export):
    try:
        as_host(node, source, export).shutdown()
        return True
    except nbd.Error:
        return False


def raw_write_error(port, source, export):
    """Opens `export` as a client that ignores the read-only flag and sends a
    write anyway: the server's error for it."""
    s = bound_socket(port, source)
    s.settimeout(10)

    def recv(n):
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            check(chunk, "the server closed the connection")
            out += chunk
        return out

    check(recv(18)[:8] == b"NBDMAGIC", "greeting")
    s.sendall(struct.pack(">I", 3))
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 7, len(data)) + data)
    flags = None
    while True:
        _, _, rtype, length = struct.unpack(">QIII", recv(20))
        payload = recv(length)
        if rtype == 3 and struct.unpack(">H", payload[:2])[0] == 0:
            flags = struct.unpack(">H", payload[10:12])[0]
        if rtype == 1:
            break
        check(not rtype & 0x80000000, f"GO refused: {payload!r}")
    check(flags is not None and flags & 2, "the export is advertised read-only")
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 7, 0, 512) + b"x" * 512)
    _, error, cookie = struct.unpack(">IIQ", recv(16))
    check(cookie == 7, "the reply is the write's")
    # The connection goes on: a read after the refused write.
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 8, 0, 512))
    _, read_error, _ = struct.unpack(">IIQ", recv(16))
    check(read_error == 0 and recv(512) == b"\0" * 512, "a read after the refused write")
    s.close()
    return error


def nbdinfo_list(node):
    r = subprocess.run(["nbdinfo", "--list", "--json", f"nbd://127.0.0.1:{node.nbd_port}"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"nbdinfo --list: {r.stderr}")
    return sorted(e["export-name"] for e in json.loads(r.stdout)["exports"])


def test(make):
    node = make(cores=2).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 64 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    for name in ("v1", "v2", "v3"):
        node.ctl("vdisk", "create", name, "--pool", "p", "--size", "8M")

    # No hosts: a loopback client reaches every vdisk.
    check(nbdinfo_list(node) == ["v1", "v2", "v3"], "no hosts: loopback lists everything")
    anonymous = as_host(node, "127.0.0.1", "v3")
    check(alive(anonymous), "no hosts: a loopback client reads")

    # Hosts, by the addresses they connect from.
    node.ctl("host", "create", "h1", "--address", "127.0.0.2")
    node.ctl("host", "create", "h2", "--address", "127.0.0.3/32", "--nbd-identity", "h2-psk")
    node.ctl_fails("host", "create", "h3", "--address", "127.0.0.2", contains="h1")
    node.ctl_fails("host", "create", "h3", contains="--nbd-identity")
    wait_until(lambda: not alive(anonymous), "the unknown client's connection closed")
    check(nbdinfo_list(node) == [], "hosts exist: an unknown client lists nothing")
    check(not opens(node, "127.0.0.1", "v1"), "an unknown client opens nothing")

    node.ctl("vdisk", "map", "v1", "h1")
    node.ctl("vdisk", "map", "v3", "h1", "--lun", "7")
    node.ctl("vdisk", "map", "v2", "h2", "--read-only")
    node.ctl_fails("vdisk", "map", "v1", "h2", contains="--force")  # h1's already
    node.ctl_fails("vdisk", "map", "v2", "h1", "--force", "--lun", "7", contains="LUN 7")
    shown = node.ctl_json("host", "show", "h1")
    check([(v["vdisk"], v["lun"]) for v in shown["vdisks"]] == [("v1", 0), ("v3", 7)],
          f"host show: {shown}")
    check(node.ctl_json("vdisk", "show", "v2")["hosts"] ==
          [{"host": "h2", "lun": 0, "read_only": True}], "vdisk show lists its hosts")

    check(listed(node, "127.0.0.2") == ["v1", "v3"], "h1 lists its own")
    check(listed(node, "127.0.0.3") == ["v2"], "h2 lists its own")
    check(not opens(node, "127.0.0.3", "v1"), "h2 cannot open h1's vdisk")
    check(not opens(node, "127.0.0.2", "v2"), "h1 cannot open h2's vdisk")

    h1_v1 = as_host(node, "127.0.0.2", "v1")
    h1_v3 = as_host(node, "127.0.0.2", "v3")
    h1_v1.pwrite(b"\xa5" * 4096, 0)
    check(h1_v1.pread(4096, 0) == b"\xa5" * 4096, "h1 reads back its write")
    h2_v2 = as_host(node, "127.0.0.3", "v2")
    check(h2_v2.is_read_only(), "a read-only mapping is advertised read-only")
    check(h2_v2.pread(4096, 0) == bytes(4096), "h2 reads its read-only vdisk")
    check(raw_write_error(node.nbd_port, "127.0.0.3", "v2") == 1,
          "a write to a read-only mapping fails with EPERM")

    # Unmapping closes that host's connections to that vdisk only.
    node.ctl("vdisk", "unmap", "v1", "h1")
    wait_until(lambda: not alive(h1_v1), "h1's connection to v1 closed")
    check(alive(h1_v3) and alive(h2_v2), "the other connections go on")
    check(not opens(node, "127.0.0.2", "v1"), "h1 cannot open v1 any more")
    node.ctl_fails("vdisk", "unmap", "v1", "h1", contains="not mapped")

    # A mapped vdisk stays; a host with vdisks goes only with --force.
    node.ctl_fails("vdisk", "delete", "v3", contains="mapped to host 'h1'")
    node.ctl_fails("host", "delete", "h1", contains="--force")
    node.ctl("host", "delete", "h1", "--force")
    wait_until(lambda: not alive(h1_v3), "h1's connection to v3 closed with the host")
    node.ctl("vdisk", "delete", "v3")
    check(alive(h2_v2), "h2 serves on")
    check([h["name"] for h in node.ctl_json("host", "list")] == ["h2"], "host list")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0, f"the I/O process never restarted: {status}")

    # The hosts and mappings are configuration: they survive a restart.
    node.stop()
    node.start()
    check(listed(node, "127.0.0.3") == ["v2"], "after a restart h2 lists its own")
    check(nbdinfo_list(node) == [], "after a restart an unknown client lists nothing")
    print("hosts: masking, read-only, unmap and delete as expected")


if __name__ == "__main__":
    run(test)

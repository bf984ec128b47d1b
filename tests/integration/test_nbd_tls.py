"""NBD over TLS with pre-shared keys, with real clients: nbdinfo and
python3-libnbd (nbds:// URIs with tls-psk-file) and qemu-io
(tls-creds-psk). Two hosts are known by their PSK identities: each lists
and opens only its own vdisks; qemu-io writes and reads its vdisk over
TLS; 8 MiB in pieces of every size, and 16 MiB by nbdcopy over four
connections, read back exact; a record changed on the path ends its
connection; a wrong key, an unmapped
export and a plain-text client against `--tls require` (NBD_REP_ERR_TLS_REQD)
each fail, and the node serves the others on; unmapping closes a TLS
connection; with `--tls on` a plain-text client is served by the address
rule again. Bad --tls settings stop sved at start with one clear line."""
import json
import os
import secrets
import socket
import struct
import subprocess
import threading

from certs import issue, make_ca
from harness import check, run, wait_until
from libnbd_client import alive, nbd

MiB = 1 << 20


def psk_file(path, keys):
    with open(path, "w") as f:
        for identity, key in keys.items():
            f.write(f"{identity}:{key}\n")
    return path


def tls_uri(node, identity, keys, export=""):
    return f"nbds://{identity}@127.0.0.1:{node.nbd_port}/{export}?tls-psk-file={keys}"


def nbdinfo_list(uri):
    r = subprocess.run(["nbdinfo", "--list", "--json", uri], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        return None, r.stderr
    return sorted(e["export-name"] for e in json.loads(r.stdout)["exports"]), r.stderr


def qemu_io_tls(node, keydir, identity, export, *commands):
    args = ["qemu-io", "--object",
            f"tls-creds-psk,id=tls0,endpoint=client,dir={keydir},username={identity}",
            "--image-opts",
            f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={node.nbd_port},"
            f"export={export},tls-creds=tls0"]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def tls_handle(node, identity, keys, export):
    h = nbd.NBD()
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_psk_file(keys)
    h.set_tls_username(identity)
    h.set_export_name(export)
    h.connect_tcp("127.0.0.1", str(node.nbd_port))
    return h


def plain_list_reply(port):
    """The server's reply type to a plain-text NBD_OPT_LIST."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(18)
        s.sendall(struct.pack(">I", 3))
        s.sendall(struct.pack(">QII", 0x49484156454F5054, 3, 0))
        head = b""
        while len(head) < 20:
            head += s.recv(20 - len(head))
        return struct.unpack(">QIII", head)[2]


class TamperingProxy:
    """Between a client and the node: passes TLS records both ways, and once
    armed flips a bit in the next application-data record the client sends
    (a record changed on the path, after the handshake)."""

    def __init__(self, port):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.armed = threading.Event()
        self.flipped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._down, args=(server, client), daemon=True).start()
        self._up(client, server)

    @staticmethod
    def _down(src, dst):
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        dst.close()

    def _up(self, src, dst):
        # Plain text until the client's first TLS record (its ClientHello,
        # 0x16 0x03): the NBD greeting and STARTTLS are passed as they come.
        pending = b""
        tls = False
        try:
            while chunk := src.recv(65536):
                pending += chunk
                if not tls:
                    at = pending.find(b"\x16\x03")
                    if at < 0:
                        dst.sendall(pending)
                        pending = b""
                        continue
                    dst.sendall(pending[:at])
                    pending = pending[at:]
                    tls = True
                while len(pending) >= 5:
                    length = struct.unpack(">H", pending[3:5])[0]
                    if len(pending) < 5 + length:
                        break
                    record = bytearray(pending[:5 + length])
                    pending = pending[5 + length:]
                    if record[0] == 0x17 and self.armed.is_set() and not self.flipped.is_set():
                        record[5 + length // 2] ^= 0x01
                        self.flipped.set()
                    dst.sendall(bytes(record))
        except OSError:
            pass
        dst.close()


def tampered_record(node, keys):
    """A record changed after the handshake ends that connection on the
    node's reactor, which says why; other connections go on."""
    other = tls_handle(node, "alice", keys, "v1")
    proxy = TamperingProxy(node.nbd_port)
    h = nbd.NBD()
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_psk_file(keys)
    h.set_tls_username("alice")
    h.set_export_name("v1")
    h.connect_tcp("127.0.0.1", str(proxy.port))
    check(len(h.pread(4096, 0)) == 4096, "a read through the proxy before it tampers")
    proxy.armed.set()
    failed = False
    try:
        h.pwrite(b"x" * 4096, 0)
    except nbd.Error:
        failed = True
    check(proxy.flipped.is_set() and failed, "the write in a changed record failed")
    wait_until(lambda: "a TLS record from the host failed its check" in node.read_log(),
               "the node says why it closed the connection")
    check(alive(other) and other.pread(4096, 0) is not None, "the other TLS connection goes on")
    other.shutdown()


def x509_part(node, keys):
    """Certificates beside the keys: a client certificate's common name is
    its identity; one from another CA is refused."""
    base = os.path.join(node.data_dir, "x509")
    make_ca(f"{base}/ca", "sve-test-ca")
    make_ca(f"{base}/rogue-ca", "rogue-ca")
    issue(f"{base}/ca", f"{base}/server", "server", "127.0.0.1", "serverAuth",
          san="IP:127.0.0.1,DNS:localhost")
    os.remove(f"{base}/server/server.ext")
    issue(f"{base}/ca", f"{base}/carol", "client", "carol", "clientAuth")
    issue(f"{base}/rogue-ca", f"{base}/rogue", "client", "carol", "clientAuth")
    # The rogue client trusts the real CA for the server's certificate.
    with open(f"{base}/ca/ca-cert.pem") as src, open(f"{base}/rogue/ca-cert.pem", "w") as dst:
        dst.write(src.read())
    node.ctl("host", "create", "hx", "--nbd-identity", "carol")
    node.ctl("vdisk", "map", "v2", "hx", "--force")
    node.stop()
    node.start(["--tls", "require", "--tls-psk", keys, "--tls-certificates", f"{base}/server"])
    uri = f"nbds://127.0.0.1:{node.nbd_port}/?tls-certificates={base}/carol"
    got, err = nbdinfo_list(uri)
    check(got == ["v2"], f"carol's certificate lists her vdisk: {got} {err}")
    r = subprocess.run(
        ["qemu-io", "--object", f"tls-creds-x509,id=tls0,endpoint=client,dir={base}/carol",
         "--image-opts",
         f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={node.nbd_port},"
         "export=v2,tls-creds=tls0", "-c", "read -P 0 0 64k"],
        capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "Pattern verification failed" not in r.stdout,
          f"qemu-io with an X.509 client certificate: {r.stdout} {r.stderr}")
    got, err = nbdinfo_list(f"nbds://127.0.0.1:{node.nbd_port}/?tls-certificates={base}/rogue")
    check(got is None, f"a certificate from another CA: {got}")
    got, err = nbdinfo_list(tls_uri(node, "bob", keys))
    check(got == ["v2"], f"keys still work beside certificates: {got} {err}")
    check("the client certificate" in node.read_log(), "the rogue certificate is in the log")


def test(make):
    node = make(cores=2)
    keydir = os.path.join(node.data_dir, "psk")
    os.makedirs(keydir)
    alice_key = secrets.token_hex(32)
    keys = psk_file(os.path.join(keydir, "keys.psk"),  # the name qemu's tls-creds-psk reads
                    {"alice": alice_key, "bob": secrets.token_hex(32)})
    wrong = psk_file(os.path.join(node.data_dir, "wrong.psk"), {"alice": secrets.token_hex(32)})
    # An identity the node does not know, with a key it knows (alice's).
    impostor = psk_file(os.path.join(node.data_dir, "impostor.psk"), {"carol": alice_key})

    # Settings that cannot work stop sved at once, with one line.
    for extra, says in ((["--tls", "require"], "needs --tls-psk"),
                        (["--tls-psk", keys], "need --tls on"),
                        (["--tls", "on", "--tls-psk", os.path.join(node.data_dir, "none")],
                         "cannot read the PSK file")):
        node.start(extra, expect_ok=False)
        node.wait_exit()
        check(node.proc.returncode != 0 and says in node.read_log(),
              f"sved {extra}: rc {node.proc.returncode}: {node.read_log()[-500:]}")
    bad = psk_file(os.path.join(node.data_dir, "bad.psk"), {"alice": "xyz"})
    node.start(["--tls", "on", "--tls-psk", bad], expect_ok=False)
    node.wait_exit()
    check(node.proc.returncode != 0 and "bad.psk:1: " in node.read_log(), "a PSK file that is not hex")

    node.start(["--tls", "require", "--tls-psk", keys])
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 64 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    for name in ("v1", "v2"):
        node.ctl("vdisk", "create", name, "--pool", "p", "--size", "16M")
    node.ctl("host", "create", "ha", "--nbd-identity", "alice")
    node.ctl("host", "create", "hb", "--nbd-identity", "bob")
    node.ctl("vdisk", "map", "v1", "ha")
    node.ctl("vdisk", "map", "v2", "hb", "--read-only")

    # Each identity lists its own.
    got, err = nbdinfo_list(tls_uri(node, "alice", keys))
    check(got == ["v1"], f"alice lists {got}: {err}")
    got, err = nbdinfo_list(tls_uri(node, "bob", keys))
    check(got == ["v2"], f"bob lists {got}: {err}")

    # qemu-io over TLS: alice writes and reads her vdisk; bob cannot open it.
    r = qemu_io_tls(node, keydir, "alice", "v1", "write -P 0x5a 0 1M", "read -P 0x5a 0 1M")
    check(r.returncode == 0 and "Pattern verification failed" not in r.stdout,
          f"qemu-io over TLS: {r.stdout} {r.stderr}")
    r = qemu_io_tls(node, keydir, "bob", "v1", "read 0 4k")
    check(r.returncode != 0 and "no vdisk named 'v1'" in r.stderr, f"bob opens v1: {r.stderr}")

    # 8 MiB in pieces of every size, read back exact. (A
    # session that lost bytes would leave libnbd waiting for the rest of a
    # reply: past a minute the node is killed, so the read fails instead.)
    guard = threading.Timer(60, node.kill)
    guard.start()
    h = tls_handle(node, "alice", keys, "v1")
    data = os.urandom(8 * MiB)
    at = 0
    for size in (1, 511, 4096, 65536, 1 * MiB, 3 * MiB + 17):
        h.pwrite(data[at:at + size], at)
        at += size
    h.pwrite(data[at:], at)
    h.flush()
    check(h.pread(8 * MiB, 0) == data, "8 MiB over TLS read back exact")
    guard.cancel()
    h2 = tls_handle(node, "bob", keys, "v2")
    check(h2.is_read_only(), "bob's mapping is read-only over TLS too")

    # What must fail fails, and the node serves on.
    got, err = nbdinfo_list(tls_uri(node, "alice", wrong))
    check(got is None, f"a wrong key: {got}")
    got, err = nbdinfo_list(tls_uri(node, "carol", impostor))
    check(got is None, f"an identity the node's key file lacks: {got}")
    check(plain_list_reply(node.nbd_port) == 0x80000005,
          "a plain-text LIST against require: NBD_REP_ERR_TLS_REQD")
    got, err = nbdinfo_list(f"nbd://127.0.0.1:{node.nbd_port}")
    check(got is None, "nbdinfo in plain text against require")
    check(alive(h) and alive(h2), "the TLS connections go on")
    check("TLS handshake" in node.read_log(), "the wrong key is in the log")

    # Many requests in flight on several TLS connections at once, read
    # back exact (the session speaks the records on its core's ring).
    src = node.make_file("src.img", 16 * MiB)
    with open(src, "wb") as f:
        f.write(os.urandom(16 * MiB))
    uri = tls_uri(node, "alice", keys, "v1")
    for args in ([src, uri], [uri, os.path.join(node.data_dir, "back.img")]):
        r = subprocess.run(["nbdcopy", "--connections=4", "--requests=32",
                            "--request-size=65536", *args],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"nbdcopy {args}: {r.stderr}")
    with open(src, "rb") as a, open(os.path.join(node.data_dir, "back.img"), "rb") as b:
        check(a.read() == b.read(), "16 MiB by nbdcopy over 4 TLS connections read back exact")
    tampered_record(node, keys)

    # Unmapping closes the TLS connection.
    node.ctl("vdisk", "unmap", "v1", "ha")
    wait_until(lambda: not alive(h), "alice's TLS connection closed by the unmap")
    check(alive(h2), "bob's goes on")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0, f"the I/O process never restarted: {status}")

    # --tls on: plain text is served again, by the address rule.
    node.ctl("host", "create", "hc", "--address", "127.0.0.1")
    node.ctl("vdisk", "map", "v1", "hc")
    node.stop()
    node.start(["--tls", "on", "--tls-psk", keys])
    got, err = nbdinfo_list(f"nbd://127.0.0.1:{node.nbd_port}")
    check(got == ["v1"], f"plain text with --tls on: {got} {err}")
    got, err = nbdinfo_list(tls_uri(node, "bob", keys))
    check(got == ["v2"], f"TLS with --tls on: {got} {err}")
    x509_part(node, keys)
    print("nbd over TLS: identities, masking, refusals and unmap as expected")


if __name__ == "__main__":
    run(test)

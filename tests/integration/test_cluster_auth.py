"""Cluster links are authenticated (docs/security.md, "Cluster links"). A
three-node cluster forms: `cluster create` makes a new key, and `node add`
hands it to each new node at its admin API. Then, against real sved
processes:

- a caller on the cluster port that sends garbage, or runs the handshake
  with a key of its own, is refused and counted, and the node serves on;
  the same handshake with the cluster's key (read from a node's data
  directory) gets through, so the refusal is the key's doing;
- the data channel's listener refuses a wrong key the same way, and lets
  the right one prove itself;
- after a handshake with the right key, what follows must be sealed under
  the connection's own keys: a record on the cluster port or a frame on the
  data channel with a tag made without them (as injected on the path) cuts
  the connection and is counted as tampered;
- a member whose key file is replaced (a process that does not hold the
  key, at a member's address) cannot rejoin: the others refuse its links
  and it gets no quorum; with the key back it rejoins;
- node add refuses a node that is already in a cluster, or whose admin API
  does not answer, and nothing is added.
"""
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess

from cluster_harness import Cluster
from harness import SVECTL, check, free_port, qemu_io, run, wait_until

MiB = 1 << 20
MAGIC, VERSION = 0x43455653, 4  # io/channel/channel_wire.hpp kVersion
HELLO, CHALLENGE, PROOF, MIRROR = 1, 7, 8, 2
HEADER = struct.Struct("<IBBHIIIIQQiI")  # io/channel/channel_wire.hpp's FrameHeader


def key_of(node):
    """A node's cluster key, from its data directory (magic, key, crc)."""
    with open(os.path.join(node.data_dir, "cluster.key"), "rb") as f:
        data = f.read()
    check(len(data) == 44 and data[:8] == b"SVEKEY01", "cluster.key is not a key file")
    return data[8:40]


def mac(key, *parts):
    m = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        m.update(struct.pack("<Q", len(p)) + p)
    return m.digest()


def recv_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def handshake(port, key, purpose, cores=1):
    """Runs the caller's half (io/channel/channel_auth.hpp) with `key`:
    (whether the listener proved the key, the socket after our proof)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    hello = HEADER.pack(MAGIC, HELLO, VERSION, 0, 16, 9, 0, cores, 77, 0, 0, 0)
    nonce = os.urandom(16)
    s.sendall(hello + nonce)
    answer = recv_exactly(s, 48 + 48)
    check(answer is not None, "the listener answered a hello with nothing")
    check(HEADER.unpack(answer[:48])[1] == CHALLENGE, "no challenge after the hello")
    theirs, proof = answer[48:64], answer[64:]
    what = {"data": b"data channel", "link": b"cluster link"}[purpose]
    good = hmac.compare_digest(
        proof, mac(key, b"sve node handshake v1", what, b"listener", hello, nonce, theirs))
    mine = mac(key, b"sve node handshake v1", what, b"caller", hello, nonce, theirs)
    s.sendall(HEADER.pack(MAGIC, PROOF, VERSION, 0, 32, 0, 0, 0, 0, 0, 0, 0) + mine)
    return good, s


def closed_soon(s):
    """Whether the other end closes `s` (or resets it) within 5 s."""
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def cut_soon(s):
    """Whether the other end closes `s` within 5 s, whatever it sends first
    (the middleman's own handshake, sealed)."""
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw_admin(node, request):
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=10)
    s.sendall(json.dumps(request).encode() + b"\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(4096)
        check(chunk, "the admin API closed the connection")
        line += chunk
    return json.loads(line)


def link_of(node):
    """Core 0's data channels (cache/channel_link.cpp)."""
    return json.loads(node.ctl("shell", "-c", "inspect cache/0").stdout)["state"]["link"]


def stats(node):
    return node.ctl_json("node", "stats")


def test(make):
    c = Cluster(make, 3)
    own = []  # node 1's key before the cluster was created: its own
    c.form(on_started=lambda: own.append(key_of(c[1])))
    n1, n2, n3 = c[1], c[2], c[3]
    key = key_of(n1)
    check(key != own[0], "cluster create kept the key node 1 had before")
    check(key_of(n2) == key and key_of(n3) == key, "node add did not hand every node the key")
    n1.ctl("mdisk", "add", "m0", n1.make_file("shared.img", 64 * MiB))
    n1.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    n1.ctl("vdisk", "create", "v", "--pool", "p", "--size", "16M")
    qemu_io(n1.url("v"), "write -P 0x5a 0 1M")
    qemu_io(n3.url("v"), "read -P 0x5a 0 1M")

    # The cluster port: garbage, a key of its own, and the right key.
    port = n1.cluster_port
    refused = stats(n1)["cluster_links"]["refused"]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(os.urandom(4096))
    check(closed_soon(s), "garbage on the cluster port was not closed")
    proved, s = handshake(port, os.urandom(32), "link")
    check(not proved, "the node proved a key the caller made up")
    check(closed_soon(s), "a caller without the key was not closed")
    wait_until(lambda: stats(n1)["cluster_links"]["refused"] >= refused + 2,
               "node 1 to count the refused callers")
    proved, s = handshake(port, key, "link")
    check(proved, "node 1 did not prove the cluster key to a caller that holds it")
    # What follows must be records sealed under this connection's keys: one
    # sealed with anything else (16 bytes that are no tag) cuts the link.
    tampered = stats(n1)["cluster_links"]["tampered"]
    s.sendall(struct.pack("<I", 64 + 16) + os.urandom(64 + 16))
    check(cut_soon(s), "a record that failed its check did not cut the link")
    wait_until(lambda: stats(n1)["cluster_links"]["tampered"] == tampered + 1,
               "node 1 to count the link cut for a record that failed its check")
    proved, s = handshake(port, key, "data")
    check(not proved, "a data channel's handshake opened a cluster link")
    s.close()

    # The data channel's listener.
    data_port = stats(n1)["data_channel"]["port"]
    before = stats(n1)["data_channel"]["refused"]
    proved, s = handshake(data_port, os.urandom(32), "data")
    check(not proved and closed_soon(s), "the data channel let in a caller without the key")
    wait_until(lambda: stats(n1)["data_channel"]["refused"] == before + 1,
               "the data channel to count the refusal")
    cores = len(stats(n1)["cores"])
    proved, s = handshake(data_port, key, "data", cores)
    check(proved, "the data channel's listener did not prove the key")
    # A copy of one block with a tag made without the connection's keys:
    # the core ends the connection before the copy reaches its NVRAM.
    copy = struct.pack("<QQ", 5, 1) + b"\x5a" * 4096
    s.sendall(HEADER.pack(MAGIC, MIRROR, VERSION, 0, len(copy), 9, 0, 1, 1, 0, 0, 0) + copy +
              os.urandom(16))
    check(closed_soon(s), "a frame with a wrong tag did not end the data channel")
    wait_until(lambda: link_of(n1)["tampered"] == 1,
               lambda: f"core 0 to count the frame that failed its tag: {link_of(n1)}")

    # A process without the key at a member's address cannot rejoin.
    n3.stop()
    with open(os.path.join(n3.data_dir, "cluster.key"), "rb") as f:
        saved = f.read()
    os.remove(os.path.join(n3.data_dir, "cluster.key"))  # it makes a key of its own
    c.start(3)
    wait_until(lambda: stats(n1)["cluster_links"]["refused"] >= refused + 6,
               "node 1 to refuse the links of a node without the key")
    wait_until(lambda: c.status(1)["quorum"] and c.status(1)["members"] == [1, 2],
               "nodes 1 and 2 to serve without node 3")
    check(not c.status(3)["quorum"], f"node 3 has quorum without the key: {c.status(3)}")
    n3.ctl_fails("vdisk", "create", "x", "--pool", "p", "--size", "4M", contains="quorum")
    qemu_io(n2.url("v"), "read -P 0x5a 0 1M")  # the others serve on
    n3.stop()
    with open(os.path.join(n3.data_dir, "cluster.key"), "wb") as f:
        f.write(saved)
    c.start(3)
    c.wait_serving([1, 2, 3], c.status(1)["boss"])
    qemu_io(n3.url("v"), "read -P 0x5a 0 1M")

    # node add: a node in a cluster takes no other key; an admin API that
    # does not answer adds nothing.
    n1.ctl_fails("node", "add", "--id", "4", "127.0.0.1:1", "--node-admin", n2.admin,
                 contains="already in a cluster")
    n1.ctl_fails("node", "add", "--id", "4", "127.0.0.1:1", "--node-admin",
                 f"127.0.0.1:{free_port()}", contains="cannot hand the cluster key")
    check([n["id"] for n in n1.ctl_json("node", "list")] == [1, 2, 3], "node 4 was added")
    check(key_of(n2) == key, "node 2's key changed")
    # A key handed to a member straight at its admin API, as node add does.
    answer = raw_admin(n2, {"cmd": "cluster.join_key", "key": "00" * 32})
    check(not answer["ok"] and "already in a cluster" in answer["error"], f"join_key: {answer}")
    check(key_of(n2) == key, "node 2 took another key")
    # The audit log is the cluster's: node 3 lists what was run on node 1,
    # the refused node add among it.
    wait_until(lambda: any('"id":4' in e["command"] and not e["ok"] and e["node"] == 1
                           for e in n3.ctl_json("audit", "list")),
               "node 3 to list node 1's refused node add")
    entries = n3.ctl_json("audit", "list")
    check(any('"cmd":"node.add"' in e["command"] and '"id":2' in e["command"] and e["ok"]
              for e in entries), "node add of node 2 is not in node 3's audit log")
    check(all(key.hex() not in e["command"] for e in entries), "the cluster key is in the audit log")
    # Nothing above restarted an I/O process (node 3's restarts were ours).
    for n in (n1, n2):
        status = n.ctl_json("daemon", "status")
        check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")

    # cluster create --first-user: the cluster has its securityadmin from
    # its first moment (no loopback window).
    solo = make()
    solo.start(["--cluster", f"127.0.0.1:{free_port()}", "--node-id", "1"])
    solo.ctl("cluster", "create", "solo", "--first-user", "boss", "--password", "boss-password-1")
    solo.ctl_fails("vdisk", "list", contains="log in")
    env = {**os.environ, "SVE_PASSWORD": "boss-password-1"}
    r = subprocess.run([SVECTL, "--admin", solo.admin, "--user", "boss", "--json", "user", "list"],
                       capture_output=True, text=True, timeout=30, env=env)
    check(r.returncode == 0 and json.loads(r.stdout) == [{"name": "boss", "role": "securityadmin"}],
          f"the first user: {r.stdout} {r.stderr}")


if __name__ == "__main__":
    run(test)

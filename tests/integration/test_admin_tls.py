"""The admin API over TLS (docs/security.md, "The admin API over TLS").
A node started with --admin-certificates speaks TLS only on its admin
port, with real processes:

- svectl with --tls-ca (or $SVE_TLS_CA) runs commands as before; Python's
  ssl module (OpenSSL: a client nobody here wrote) sends a command line and
  gets its answer;
- svectl without the CA fails with one line that says what to give; with a
  CA that did not sign the node's certificate it fails on the certificate;
  a plain-text client gets nothing but a closed connection; none of this
  harms the node (no restart);
- a certificate directory sved cannot load stops it at start with one line;
- the node alone (--single-process) serves TLS from its own listener;
- a two-node cluster whose admin APIs speak TLS forms: node add hands the
  cluster key over TLS, trusting the directory's ca-cert.pem.
"""
import json
import os
import socket
import ssl
import subprocess

from certs import issue, make_ca
from cluster_harness import Cluster
from harness import SVECTL, check, run

MiB = 1 << 20


def svectl(node, *args, ca=None):
    env = {k: v for k, v in os.environ.items() if k != "SVE_TLS_CA"}
    if ca:
        env["SVE_TLS_CA"] = ca
    return subprocess.run([SVECTL, "--admin", node.admin, *args], capture_output=True,
                          text=True, timeout=60, env=env)


def python_tls_command(node, ca, request):
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", node.admin_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(json.dumps(request).encode() + b"\n")
            line = b""
            while not line.endswith(b"\n"):
                chunk = s.recv(4096)
                check(chunk, "the admin API closed a TLS connection before answering")
                line += chunk
    return json.loads(line)


def plain_answer(node):
    """What a plain-text client gets for a command line: b"" if closed."""
    with socket.create_connection(("127.0.0.1", node.admin_port), timeout=20) as s:
        s.sendall(b'{"cmd":"vdisk.list"}\n')
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    return got


def test(make):
    base = make().data_dir
    make_ca(f"{base}/ca", "sve-admin-ca")
    make_ca(f"{base}/rogue-ca", "rogue-ca")
    certs = f"{base}/admin-tls"
    issue(f"{base}/ca", certs, "server", "127.0.0.1", "serverAuth", san="IP:127.0.0.1")
    ca, rogue = f"{base}/ca/ca-cert.pem", f"{base}/rogue-ca/ca-cert.pem"

    node = make()
    node.start(["--admin-certificates", certs])
    r = svectl(node, "mdisk", "add", "m0", node.make_file("m0.img", 64 * MiB), ca=ca)
    check(r.returncode == 0, f"svectl over TLS: {r.stderr}")
    os.environ["SVE_TLS_CA"] = ca  # (the harness's svectl from here on)
    node.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    node.ctl("vdisk", "create", "v", "--pool", "p", "--size", "8M")
    check([v["name"] for v in node.ctl_json("vdisk", "list")] == ["v"], "vdisk list over TLS")

    reply = python_tls_command(node, ca, {"cmd": "vdisk.list"})
    check(reply["ok"] and [v["name"] for v in reply["result"]] == ["v"],
          f"Python's ssl client: {reply}")

    r = svectl(node, "vdisk", "list")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(r.returncode != 0 and len(lines) == 1 and "--tls-ca" in r.stderr,
          f"plain svectl against a TLS admin port: {r.returncode} {r.stderr!r}")
    r = svectl(node, "vdisk", "list", ca=rogue)
    check(r.returncode != 0 and "certificate" in r.stderr,
          f"svectl trusting another CA: {r.returncode} {r.stderr!r}")
    check(b"vdisk" not in plain_answer(node) and b"ok" not in plain_answer(node),
          "a plain-text client got an answer from the TLS admin port")
    r = svectl(node, "vdisk", "list", ca=f"{base}/no-such-ca.pem")
    check(r.returncode == 2 and "--tls-ca" in r.stderr, f"a CA file that is not there: {r.stderr}")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")
    node.stop()

    # Certificates sved cannot load: it does not start, and says why.
    empty = f"{base}/empty-certs"
    os.makedirs(empty)
    broken = make()
    broken.start(["--admin-certificates", empty], expect_ok=False)
    rc = broken.wait_exit()
    check(rc != 0 and "--admin-certificates" in broken.read_log(),
          f"sved with no certificates: rc {rc}, log {broken.read_log()[-400:]}")

    # The node alone: its own listener speaks TLS.
    alone = make()
    alone.start(["--single-process", "--admin-certificates", certs])
    check(alone.ctl_json("vdisk", "list") == [], "vdisk list over TLS, single process")
    check(b"ok" not in plain_answer(alone), "a plain-text client got an answer, single process")
    alone.stop()

    # A cluster whose admin APIs speak TLS: node add hands the key over TLS.
    c = Cluster(make, 2, extra=["--admin-certificates", certs])
    c.form()
    c[1].ctl("mdisk", "add", "m0", c[1].make_file("shared.img", 32 * MiB))
    c[1].ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    c[2].ctl("vdisk", "create", "w", "--pool", "p", "--size", "4M")
    check([v["name"] for v in c[1].ctl_json("vdisk", "list")] == ["w"], "the cluster over TLS")
    print("admin TLS: svectl, Python's ssl, refusals, single process and node add as expected")


if __name__ == "__main__":
    run(test)

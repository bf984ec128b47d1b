"""The REST API (POST /rest/v1/<command>) with curl against a real sved,
over HTTP and then HTTPS: the commands svectl sends, with the same checks
(while no user exists, loopback clients only; then a token from
/rest/v1/auth or a user and password in the headers, and the role's
limits, answered 403), malformed and hostile requests answered 4xx with
nothing changed and the node serving on, and every change in the audit
log with the client's real address (a "from" in the body is ignored)."""
import json
import os
import subprocess

from harness import check, free_port, run

MiB = 1 << 20


class Rest:
    def __init__(self, base, cacert=None):
        self.base, self.cacert = base, cacert

    def post(self, path, body=None, headers=(), raw=None):
        """(HTTP status, parsed body) of a POST to /rest/v1/`path`."""
        args = ["curl", "-sS", "-X", "POST", "-o", "-", "-w", "\n%{http_code}",
                "--max-time", "30"]
        if self.cacert:
            args += ["--cacert", self.cacert]
        for h in headers:
            args += ["-H", h]
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]  # from stdin
        r = subprocess.run(args + [f"{self.base}/rest/v1/{path}"], capture_output=True,
                           text=True, timeout=60, input=data)
        check(r.returncode == 0, f"curl {path}: {r.stderr}")
        text, code = r.stdout.rsplit("\n", 1)
        return int(code), (json.loads(text) if text.strip() else None)

    def ok(self, path, body=None, headers=()):
        status, reply = self.post(path, body, headers)
        check(status == 200, f"POST {path}: {status} {reply}")
        return reply

    def refused(self, path, status, says, body=None, headers=(), raw=None):
        got, reply = self.post(path, body, headers, raw)
        check(got == status and says in (reply or {}).get("error", ""),
              f"POST {path}: expected {status} {says!r}, got {got} {reply}")


def test(make):
    node = make()
    port = free_port()
    node.start(["--rest", f"127.0.0.1:{port}"])
    rest = Rest(f"http://127.0.0.1:{port}")

    # No users: loopback clients, as on the admin port.
    rest.ok("mdisk.add", {"name": "m0", "path": "memory:64M"})
    rest.ok("pool.create", {"name": "p", "mdisks": ["m0"], "extent_size": "1M"})
    rest.ok("vdisk.create", {"name": "v", "pool": "p", "size": "4M", "from": "10.9.9.9"})
    check([v["name"] for v in rest.ok("vdisk.list")] == ["v"], "vdisk.list over REST")
    check([v["name"] for v in node.ctl_json("vdisk", "list")] == ["v"], "svectl sees it too")

    # Malformed and hostile: 4xx, nothing changes, the node serves on.
    rest.refused("vdisk.create", 400, "JSON object", raw="[1, 2]")
    rest.refused("vdisk.create", 400, "JSON object", raw='{"name": "w", ')
    rest.refused("vdisk.create", 400, "", body={"name": 5, "pool": "p", "size": "4M"})
    rest.refused("vdisk.create", 400, "", body={"name": "w", "pool": "p"})
    rest.refused("nosuch.command", 400, "unknown command")
    rest.refused("vdisk.create.x", 404, "POST /rest/v1/<command>")
    status, _ = rest.post("vdisk.create", raw="x" * (2 * MiB))
    check(status == 413, f"a 2 MiB body: {status}")
    r = subprocess.run(["curl", "-sS", "-X", "POST", f"http://127.0.0.1:{port}/rest/v1/vdisk.list"],
                       capture_output=True, text=True, timeout=30)
    check("-d '{}'" in r.stdout, f"a POST without a body: {r.stdout}")
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://127.0.0.1:{port}/rest/v1/vdisk.list"],
                       capture_output=True, text=True, timeout=30)
    check(r.stdout != "200", f"GET served: {r.stdout}")
    check([v["name"] for v in rest.ok("vdisk.list")] == ["v"], "a refused request changed things")
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")

    # Users: credentials in the headers, a token from /rest/v1/auth.
    node.ctl("user", "create", "sec", "--role", "securityadmin", "--password", "sec-password-1")
    sec = ["X-Auth-Username: sec", "X-Auth-Password: sec-password-1"]
    rest.refused("vdisk.list", 403, "log in")
    rest.refused("vdisk.list", 403, "log in",  # credentials go in the headers only
                 body={"auth": {"user": "sec", "password": "sec-password-1"}})
    rest.refused("vdisk.list", 403, "wrong user name or password",
                 headers=["X-Auth-Username: sec", "X-Auth-Password: nope-nope-1"])
    rest.refused("auth", 403, "X-Auth-Username")
    rest.refused("auth", 403, "wrong user name or password",
                 headers=["X-Auth-Username: sec", "X-Auth-Password: nope-nope-1"])
    token = rest.ok("auth", headers=sec)["token"]
    as_sec = [f"X-Auth-Token: {token}"]
    rest.ok("user.create", {"name": "mon", "role": "monitor", "password": "mon-password-1"},
            headers=as_sec)
    mon = ["X-Auth-Token: " + rest.ok("auth", headers=["X-Auth-Username: mon",
                                                        "X-Auth-Password: mon-password-1"])["token"]]
    check([v["name"] for v in rest.ok("vdisk.list", headers=mon)] == ["v"], "monitor reads")
    rest.refused("vdisk.create", 403, "may not run vdisk.create",
                 body={"name": "w", "pool": "p", "size": "4M"}, headers=mon)
    rest.ok("vdisk.create", {"name": "w", "pool": "p", "size": "4M"}, headers=as_sec)
    rest.refused("vdisk.list", 403, "session token is not valid", headers=["X-Auth-Token: x"])

    # The audit log has them, with the connection's address.
    entries = rest.ok("audit.list", headers=as_sec)
    created = [e for e in entries if '"cmd":"vdisk.create"' in e["command"] and e["ok"]]
    check(len(created) == 2 and all(e["from"] == "127.0.0.1" for e in created),
          f"REST changes in the audit log: {created}")
    check(any(not e["ok"] and "may not run vdisk.create" in e["result"] for e in entries),
          "the monitor's refusal is not in the audit log")
    check("10.9.9.9" not in json.dumps(entries), "a client chose the address it is audited by")

    # HTTPS, with a certificate of the node's.
    node.stop()
    certs = os.path.join(node.data_dir, "rest-tls")
    os.makedirs(certs)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", os.path.join(certs, "server-key.pem"),
                    "-out", os.path.join(certs, "server-cert.pem")],
                   check=True, capture_output=True, timeout=60)
    node.start(["--rest", f"127.0.0.1:{port}", "--rest-certificates", certs])
    secure = Rest(f"https://127.0.0.1:{port}", cacert=os.path.join(certs, "server-cert.pem"))
    token = secure.ok("auth", headers=sec)["token"]
    check(sorted(v["name"] for v in secure.ok("vdisk.list", headers=[f"X-Auth-Token: {token}"]))
          == ["v", "w"], "vdisk.list over HTTPS")
    r = subprocess.run(["curl", "-sS", "-X", "POST", "--max-time", "10",
                        f"http://127.0.0.1:{port}/rest/v1/vdisk.list"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 or "vdisk" not in r.stdout, "plain HTTP served on the HTTPS port")
    secure.ok("vdisk.list", headers=[f"X-Auth-Token: {token}"])
    status = node.ctl_json("daemon", "status")
    check(status["restarts"] == 0 and status["io_serving"], f"daemon status: {status}")
    print("rest: commands, credentials, refusals, audit and HTTPS as expected")


if __name__ == "__main__":
    run(test)

"""Administrators, with svectl against a real sved: until the first user
exists only loopback clients may send commands; the first user must be a
securityadmin; from then on every command without credentials, with a
wrong password or from a role that may not run it is refused with one line
and changes nothing (the listings compared before and after); five wrong
passwords in a row lock a user (or a name no user has) out from that
address, the right password included, while another address gets in; each role
runs what it should (monitor reads, copyoperator starts copies,
administrator configures but not users, hosts or the debug shell,
securityadmin all); a
session token saved by `svectl login` (mode 0600) works until the user's
password changes; the node's log keeps who ran what with secrets masked;
users and tokens survive a restart; the node never restarts."""
import atexit
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

from harness import SVECTL, SVED, check, run

PASSWORDS = {"sec": "sec-password-1", "adm": "adm-password-1", "cop": "cop-password-1",
             "mon": "mon-password-1"}

# Each svectl user gets its own HOME (saved sessions) under one folder that
# goes when the test does.
HOMES = tempfile.mkdtemp(prefix="sve-admin-auth-")
atexit.register(shutil.rmtree, HOMES, True)


def new_home():
    return tempfile.mkdtemp(prefix="home-", dir=HOMES)


def local_address():
    """An address of this machine that is not loopback, if it has one."""
    r = subprocess.run(["hostname", "-I"], capture_output=True, text=True)
    for a in r.stdout.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


class Admin:
    """svectl as one user (or nobody), with its own saved sessions."""

    def __init__(self, node, user=None, password=None, home=None, admin=None):
        self.node, self.user = node, user
        self.admin = admin or node.admin
        self.env = {**os.environ, "HOME": home or new_home()}
        self.env.pop("SVE_TOKEN_FILE", None)
        self.env.pop("XDG_CONFIG_HOME", None)
        if user:
            self.env["SVE_PASSWORD"] = password if password is not None else PASSWORDS[user]

    def ctl(self, *args):
        base = ["--admin", self.admin] + (["--user", self.user] if self.user else [])
        return subprocess.run([SVECTL, *base, *args], capture_output=True, text=True,
                              timeout=60, env=self.env)

    def ok(self, *args):
        r = self.ctl(*args)
        check(r.returncode == 0, f"{self.user or 'nobody'}: svectl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def refused(self, *args, says):
        r = self.ctl(*args)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(r.returncode != 0 and len(lines) == 1 and says in r.stderr,
              f"{self.user or 'nobody'}: svectl {' '.join(args)} should be refused with "
              f"{says!r}: rc {r.returncode} {r.stderr!r}")


def listings(sec):
    return {noun: sec.ok("--json", noun, "list") for noun in ("vdisk", "host", "user", "fcmap")}


def test(make):
    node = make()
    node.start(["--enable-chaos", "--admin", f"0.0.0.0:{node.admin_port}"])
    nobody = Admin(node)
    remote_ip = local_address()
    if remote_ip:  # no users: only loopback clients
        Admin(node, admin=f"{remote_ip}:{node.admin_port}").refused(
            "vdisk", "list", says="only clients on the node itself")
    nobody.ok("mdisk", "add", "m0", "memory:64M")
    nobody.ok("pool", "create", "p", "--extent-size", "1M", "m0")
    for v in ("a", "b"):
        nobody.ok("vdisk", "create", v, "--pool", "p", "--size", "4M")
    nobody.refused("user", "create", "mon", "--role", "monitor", "--password", PASSWORDS["mon"],
                   says="must be a securityadmin")
    nobody.ok("user", "create", "sec", "--role", "securityadmin", "--password", PASSWORDS["sec"])
    sec = Admin(node, "sec")
    for name, role in (("adm", "administrator"), ("cop", "copyoperator"), ("mon", "monitor")):
        sec.ok("user", "create", name, "--role", role, "--password", PASSWORDS[name])
    sec.refused("user", "create", "x", "--role", "root", "--password", "whatever-1",
                says="no role 'root'")

    # Without credentials, or with wrong ones: refused, nothing changes.
    before = listings(sec)
    attempts = [("vdisk", "list"), ("vdisk", "create", "c", "--pool", "p", "--size", "4M"),
                ("vdisk", "delete", "a"), ("host", "create", "h", "--address", "10.0.0.1"),
                ("user", "create", "eve", "--role", "securityadmin", "--password", "eve-pass-1"),
                ("chaos", "start", "--seed", "1"), ("user", "whoami")]
    for i, args in enumerate(attempts):
        nobody.refused(*args, says="log in")
        if i < 4:  # (a fifth in a row would lock sec out from here: below)
            Admin(node, "sec", "wrong-password").refused(*args, says="wrong user name or password")
        # A name no user has locks out the same, after five.
        Admin(node, "eve", "eve-pass-1").refused(
            *args, says="wrong user name or password" if i < 5 else "too many failed logins")
    if remote_ip:
        Admin(node, admin=f"{remote_ip}:{node.admin_port}").refused("vdisk", "list", says="log in")
        Admin(node, "mon", admin=f"{remote_ip}:{node.admin_port}").ok("vdisk", "list")

    # Each role.
    adm, cop, mon = Admin(node, "adm"), Admin(node, "cop"), Admin(node, "mon")
    mon.ok("vdisk", "list")
    mon.ok("vdisk", "show", "a")
    for args in attempts[1:6]:
        mon.refused(*args, says="(monitor) may not run")
    mon.refused("user", "list", says="may not run user.list")
    cop.refused("vdisk", "create", "c", "--pool", "p", "--size", "4M", says="may not run")
    adm.refused("host", "create", "h", "--address", "10.0.0.1", says="may not run host.create")
    adm.refused("user", "create", "eve", "--role", "monitor", "--password", "eve-pass-1",
                says="may not run user.create")
    check(listings(sec) == before, "the refused commands changed the configuration")

    # Five wrong passwords in a row lock a user out from that address: the
    # right one is refused too, from there; from elsewhere it is not.
    sec.ok("user", "create", "lockme", "--role", "monitor", "--password", "lockme-pass-1")
    for _ in range(5):
        Admin(node, "lockme", "not-the-password").refused("vdisk", "list",
                                                          says="wrong user name or password")
    Admin(node, "lockme", "lockme-pass-1").refused("vdisk", "list", says="too many failed logins")
    if remote_ip:
        Admin(node, "lockme", "lockme-pass-1", admin=f"{remote_ip}:{node.admin_port}").ok(
            "vdisk", "list")
    # sec's four failures above were cleared by its logins since: one more
    # is one, not a fifth.
    Admin(node, "sec", "wrong-password").refused("vdisk", "list", says="wrong user name")
    sec.ok("vdisk", "list")
    sec.ok("host", "create", "h", "--address", "10.0.0.1")
    adm.ok("vdisk", "map", "a", "h")
    adm.ok("vdisk", "create", "c", "--pool", "p", "--size", "4M")
    adm.ok("fcmap", "create", "--source", "a", "--target", "c", "--name", "f", "--copyrate", "0")
    cop.ok("fcmap", "prepare", "f")
    cop.refused("fcmap", "delete", "f", "--force", says="may not run fcmap.delete")
    mon.refused("chaos", "start", "--seed", "1", says="may not run chaos.start")
    # The debug shell sees messages with secrets in them: securityadmin only.
    adm.refused("shell", "-c", "actors", says="may not run shell.actors")
    check("MAILBOX" in sec.ok("shell", "-c", "actors"), "the security administrator's shell")
    adm.ok("chaos", "start", "--seed", "1", "--rate", "0.001")
    adm.ok("chaos", "stop")
    # Anyone may change their own password, and only that.
    mon.refused("user", "passwd", "adm", "--password", "mon-took-it", says="may not run")
    PASSWORDS["mon"] = "mon-password-2"
    mon.ok("user", "passwd", "mon", "--password", PASSWORDS["mon"])
    Admin(node, "mon", "mon-password-1").refused("vdisk", "list", says="wrong user name")
    Admin(node, "mon").ok("vdisk", "list")
    sec.refused("user", "delete", "sec", says="last securityadmin")

    # A saved session: mode 0600; it ends when the password changes.
    home = new_home()
    Admin(node, "adm", home=home).ok("login")
    token_file = os.path.join(home, ".config", "sve", f"token-127.0.0.1_{node.admin_port}")
    mode = stat.S_IMODE(os.stat(token_file).st_mode)
    check(mode == 0o600, f"the token file's mode is {oct(mode)}")
    session = Admin(node, home=home)
    check("'adm' (administrator)" in session.ok("user", "whoami"), "the session is adm's")
    session.ok("vdisk", "create", "d", "--pool", "p", "--size", "4M")
    node.stop()  # users, the token key and so the session survive a restart
    node.start(["--enable-chaos", "--admin", f"0.0.0.0:{node.admin_port}"])
    session.ok("vdisk", "show", "d")
    PASSWORDS["adm"] = "adm-password-2"
    sec.ok("user", "passwd", "adm", "--password", PASSWORDS["adm"])
    session.refused("vdisk", "list", says="session token is not valid")
    check("logged out" in session.ok("logout"), "logout")
    session.refused("vdisk", "list", says="log in")

    # The audit log: who ran what from where, secrets masked, refusals and
    # failed logins too, in order, across the restart; securityadmin and
    # administrator read it, a monitor may not.
    entries = json.loads(sec.ok("--json", "audit", "list"))
    seqs = [e["seq"] for e in entries]
    check(seqs == sorted(set(seqs)), f"audit entries out of order: {seqs}")
    check(any(e["who"].startswith("'adm' (administrator)") and e["from"] == "127.0.0.1" and
              '"cmd":"vdisk.create"' in e["command"] and e["ok"] for e in entries),
          "adm's vdisk.create is not in the audit log")
    check(any(not e["ok"] and "wrong user name or password" in e["result"] for e in entries),
          "failed logins are not in the audit log")
    check(any(not e["ok"] and "may not run user.create" in e["result"] for e in entries),
          "a command beyond a role is not in the audit log")
    check(any('"cmd":"user.create"' in e["command"] and '"name":"sec"' in e["command"]
              for e in entries), "the audit log lost what came before the restart")
    check(any('"password":"***"' in e["command"] for e in entries), "no masked password")
    for password in PASSWORDS.values():
        check(password not in json.dumps(entries), "a password reached the audit log")
    newest = json.loads(Admin(node, "adm").ok("--json", "audit", "list", "--count", "2"))
    check([e["seq"] for e in newest] == seqs[-2:], f"audit list --count 2: {newest}")
    check(json.loads(sec.ok("--json", "audit", "list", "--since", "2100-01-01")) == [],
          "audit list --since the future")
    check(len(json.loads(sec.ok("--json", "audit", "list", "--since", "1d"))) == len(entries),
          "audit list --since a day ago")
    sec.refused("audit", "list", "--since", "yesterday", says="is not a time")
    # A flood of refusals is recorded at most 20 a second; the next entry
    # says how many were left out, so none goes unaccounted.
    with socket.create_connection(("127.0.0.1", node.admin_port), timeout=30) as s:
        f = s.makefile("rwb")
        for _ in range(100):
            f.write(b'{"cmd": "vdisk.delete", "name": "a"}\n')
        f.flush()
        replies = [json.loads(f.readline()) for _ in range(100)]
    check(all(not r["ok"] and "log in" in r["error"] for r in replies), "the flood was not refused")
    sec.ok("vdisk", "create", "after-flood", "--pool", "p", "--size", "4M")
    later = json.loads(sec.ok("--json", "audit", "list"))[len(entries):]
    flood = [e for e in later if '"name":"a"' in e["command"] and not e["ok"]]
    suppressed = sum(e["suppressed"] for e in later)
    check(flood and suppressed and len(flood) + suppressed == 100,
          f"the flood: {len(flood)} recorded, {suppressed} said to be left out")
    Admin(node, "mon").refused("audit", "list", says="may not run audit.list")

    # Who ran what, secrets masked.
    log = node.read_log()
    check("audit: 'adm' (administrator) from 127.0.0.1 ran {\"cmd\":\"vdisk.create\"" in log,
          "the audit lines name the user")
    check('"password":"***"' in log, "passwords are masked in the audit lines")
    for password in PASSWORDS.values():
        check(password not in log, "a password reached the log")
    status = sec.ok("--json", "daemon", "status")
    check('"restarts": 0' in status, f"the I/O process never restarted: {status}")
    # sved --init-admin: a node alone with its first administrator from the
    # start (no loopback window); a restart leaves the users as they are.
    other = make()
    env = {**os.environ, "SVE_INIT_ADMIN_PASSWORD": "boss-password-1"}
    other.start(["--init-admin", "boss"], env=env)
    Admin(other).refused("vdisk", "list", says="log in")
    boss = Admin(other, "boss", "boss-password-1")
    check("securityadmin" in boss.ok("user", "list"), "--init-admin's user is no securityadmin")
    boss.ok("user", "passwd", "boss", "--password", "boss-password-2")
    other.stop()
    other.start(["--init-admin", "boss"], env=env)
    Admin(other, "boss", "boss-password-2").ok("user", "list")
    check("--init-admin boss: administrators exist" in other.read_log(), "the restart's log line")
    other.stop()
    r = subprocess.run([SVED, "--data-dir", other.data_dir, "--init-admin", "x"],
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "SVE_INIT_ADMIN_PASSWORD"})
    check(r.returncode != 0 and "SVE_INIT_ADMIN_PASSWORD" in r.stderr, f"no password: {r.stderr}")
    print("admin auth: loopback rule, roles, sessions and audit as expected")


if __name__ == "__main__":
    run(test)

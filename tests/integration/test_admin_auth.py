"""Administrators, with svectl against a real sved: until the first user
exists only loopback clients may send commands; the first user must be a
securityadmin; from then on every command without credentials, with a
wrong password or from a role that may not run it is refused with one line
and changes nothing (the listings compared before and after); each role
runs what it should (monitor reads, copyoperator starts copies,
administrator configures but not users, hosts or the debug shell,
securityadmin all); a
session token saved by `svectl login` (mode 0600) works until the user's
password changes; the node's log keeps who ran what with secrets masked;
users and tokens survive a restart; the node never restarts."""
import os
import stat
import subprocess
import tempfile

from harness import SVECTL, check, run

PASSWORDS = {"sec": "sec-password-1", "adm": "adm-password-1", "cop": "cop-password-1",
             "mon": "mon-password-1"}


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
        self.env = {**os.environ, "HOME": home or tempfile.mkdtemp(prefix="sve-home-")}
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
    for args in attempts:
        nobody.refused(*args, says="log in")
        Admin(node, "sec", "wrong-password").refused(*args, says="wrong user name or password")
        Admin(node, "eve", "eve-pass-1").refused(*args, says="wrong user name or password")
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
    home = tempfile.mkdtemp(prefix="sve-home-")
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

    # Who ran what, secrets masked.
    log = node.read_log()
    check("audit: 'adm' (administrator) from 127.0.0.1 ran {\"cmd\":\"vdisk.create\"" in log,
          "the audit lines name the user")
    check('"password":"***"' in log, "passwords are masked in the audit lines")
    for password in PASSWORDS.values():
        check(password not in log, "a password reached the log")
    status = sec.ok("--json", "daemon", "status")
    check('"restarts": 0' in status, f"the I/O process never restarted: {status}")
    print("admin auth: loopback rule, roles, sessions and audit as expected")


if __name__ == "__main__":
    run(test)

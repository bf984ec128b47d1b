"""Starts real sved processes on 127.0.0.1 and drives them with real clients.

Every wait is for a condition with a deadline, never a fixed sleep.
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("SVE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SVED = os.path.join(BUILD, "sved")
SVECTL = os.path.join(BUILD, "svectl")
SKIP = 77  # CTest's SKIP_RETURN_CODE


_ports = random.Random(os.getpid())
# Ports this process holds for its servers until it exits. Another test
# running beside this one picks its ports the same way, and a port is only
# bound when sved starts, later: each pick is claimed by a file, so that two
# tests never pick one port (seen: integration.cache_faults failing with
# EADDRINUSE beside integration.chaos under ctest -j2).
_CLAIMS = os.path.join(tempfile.gettempdir(), "sve-test-ports")
_claimed = []


def _claim(port):
    os.makedirs(_CLAIMS, exist_ok=True)
    path = os.path.join(_CLAIMS, str(port))
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            _claimed.append(path)
            return True
        except FileExistsError:
            try:  # a claim a killed test left behind stops counting after 15 min
                if time.time() - os.stat(path).st_mtime < 900:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                pass
    return False


@atexit.register
def _release_claims():
    for path in _claimed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def free_port():
    """A port below the kernel's ephemeral range (32768 and up here): a port
    the kernel handed out could be taken again by any outgoing connection
    of a test running beside this one before sved binds it (seen:
    integration.cluster failing with EADDRINUSE under ctest -j2). Claimed
    for this process (_claim), and free when picked."""
    low, _ = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    for _ in range(1000):
        port = _ports.randrange(20000, min(low, 32768))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not _claim(port):
            continue
        return port
    raise AssertionError("no free port below the ephemeral range")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def io_restarted(node, count):
    """Waits until the node's supervisor has restarted its I/O process
    `count` times and the new one serves."""
    def ok():
        s = node.ctl_json("daemon", "status")
        return s["restarts"] == count and s["io_serving"]
    wait_until(ok, f"restart {count} of {getattr(node, 'node_id', 'the node')}'s I/O process",
               timeout=30)


def wait_until(cond, what, timeout=10):
    """Waits for cond() to hold, looking every 10 ms, at most `timeout` s.
    `what` may be a function, called for the message only on a timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            check(False, f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.01)


def condensed_stacks(gdb_output, frames=14, width=160):
    """gdb's `thread apply all bt`, every thread kept but each cut to its
    innermost frames and each line to `width` characters: what a hang's
    report needs, short enough for a test log."""
    out, kept = [], 0
    for line in gdb_output.splitlines():
        if line.startswith("Thread "):
            out.append(line[:width])
            kept = 0
        elif line.startswith("#") and kept < frames:
            out.append("  " + line[:width])
            kept += 1
    return "\n".join(out) if out else gdb_output[-12000:]


class Sved:
    def __init__(self, data_dir=None, cores=1):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sve-it-")
        self.admin_port = free_port()
        self.nbd_port = free_port()
        self.cores = cores
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "sved.log")

    @property
    def admin(self):
        return f"127.0.0.1:{self.admin_port}"

    def url(self, vdisk):
        return f"nbd://127.0.0.1:{self.nbd_port}/{vdisk}"

    def start(self, extra=(), expect_ok=True, env=None):
        self.proc = subprocess.Popen(
            [SVED, "--data-dir", self.data_dir, "--admin", self.admin,
             "--nbd", f"127.0.0.1:{self.nbd_port}", "--cores", str(self.cores), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
            start_new_session=True)  # a process group: sved and its I/O process
        up = threading.Event()
        self._copier = threading.Thread(target=self._copy_log, args=(self.proc, up), daemon=True)
        self._copier.start()
        if expect_ok:
            # sved logs "node up" once its listeners accept; EOF also sets the
            # event, so an early exit is reported at once.
            if not up.wait(timeout=30) or self.proc.poll() is not None:
                raise AssertionError(f"sved did not come up:\n{self.read_log()}")
        return self

    def _copy_log(self, proc, up):
        with open(self.log_path, "ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if b"node up" in line:
                    up.set()
        up.set()

    def wait_exit(self, timeout=30):
        """Waits for sved to exit by itself; its log is complete afterwards."""
        rc = self.proc.wait(timeout=timeout)
        self._copier.join(timeout=timeout)
        return rc

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def io_pid(self):
        """The I/O process, the child of the sved started."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else None

    def rss_bytes(self):
        """The I/O process's resident memory."""
        with open(f"/proc/{self.io_pid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def send(self, sig):
        """To both processes, as a node (SIGKILL, SIGSTOP, SIGCONT)."""
        os.killpg(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            # SIGTERM to sved, which stops its I/O process (as systemd's
            # KillMode=mixed); any other signal to both processes.
            if sig == signal.SIGTERM:
                self.proc.send_signal(sig)
            else:
                self.send(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # A hang on the way out: say where every thread is, then go.
                stacks = subprocess.run(
                    ["gdb", "-p", str(self.io_pid() or self.proc.pid), "-batch", "-ex",
                     "thread apply all bt"],
                    capture_output=True, text=True, timeout=120).stdout
                self.send(signal.SIGKILL)
                self.proc.wait(timeout=30)
                raise AssertionError(f"sved did not exit within 30 s of signal {sig}; "
                                     f"its threads were:\n{condensed_stacks(stacks)}")
        if self.proc:
            # The log's copier reads to EOF first: closing the pipe under its
            # read raised in its thread ("readline of closed file").
            if self._copier:
                self._copier.join(timeout=5)
            self.proc.stdout.close()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def ctl(self, *args, ok=True):
        r = subprocess.run([SVECTL, "--admin", self.admin, *args],
                           capture_output=True, text=True, timeout=60)
        if ok and r.returncode != 0:
            raise AssertionError(f"svectl {' '.join(args)} failed: {r.stderr}")
        return r

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def ctl_fails(self, *args, contains=None):
        r = self.ctl(*args, ok=False)
        check(r.returncode != 0, f"svectl {' '.join(args)} should have failed")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(len(lines) == 1, f"expected one error line, got: {r.stderr!r}")
        if contains:
            check(contains in r.stderr, f"expected {contains!r} in {r.stderr!r}")
        return r.stderr.strip()

    def make_file(self, name, size):
        path = os.path.join(self.data_dir, name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def qemu_io(url, *commands, ok=True):
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    r = subprocess.run(args + [url], capture_output=True, text=True, timeout=120)
    failed = r.returncode != 0 or "Pattern verification failed" in r.stdout \
        or "failed:" in r.stdout or "error" in r.stderr.lower()
    if ok and failed:
        raise AssertionError(f"qemu-io {commands} failed:\n{r.stdout}\n{r.stderr}")
    return r


class RawNbd:
    """A minimal NBD client for sending what well-behaved clients never send."""
    REQ = 0x25609513

    def __init__(self, port, export):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = self.recv(18)
        assert hello[:8] == b"NBDMAGIC"
        self.s.sendall(struct.pack(">I", 3))
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self.s.sendall(struct.pack(">QII", 0x49484156454F5054, 7, len(data)) + data)
        while True:
            magic, opt, rtype, length = struct.unpack(">QIII", self.recv(20))
            payload = self.recv(length)
            if rtype == 3 and struct.unpack(">H", payload[:2])[0] == 0:
                self.size = struct.unpack(">Q", payload[2:10])[0]
            if rtype == 1:
                break
            if rtype & 0x80000000:
                raise AssertionError(f"GO refused: {payload!r}")

    def recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("server closed the connection")
            out += chunk
        return out

    def request(self, cmd, offset, length, payload=b"", flags=0, cookie=1):
        self.s.sendall(struct.pack(">IHHQQI", self.REQ, flags, cmd, cookie, offset, length) + payload)

    def reply(self, read_length=0):
        magic, error, cookie = struct.unpack(">IIQ", self.recv(16))
        assert magic == 0x67446698, hex(magic)
        data = self.recv(read_length) if error == 0 and read_length else b""
        return error, cookie, data

    def closed_by_server(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def run(test):
    """Runs `test(node_factory)` and cleans up every node it made."""
    nodes = []

    def factory(**kw):
        n = Sved(**kw)
        nodes.append(n)
        return n

    try:
        rc = test(factory)
        return sys.exit(rc or 0)
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        for n in nodes:
            if os.path.exists(n.log_path):
                print(f"--- sved log {n.data_dir}:\n{n.read_log()[-4000:]}", file=sys.stderr)
        sys.exit(1)
    finally:
        for n in nodes:
            n.cleanup()

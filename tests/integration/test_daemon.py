"""sved as a service: options from a configuration file (the command line's
win), and the systemd notify protocol: READY=1 once it serves, WATCHDOG=1
keep-alives while its cores answer, STOPPING=1 on SIGTERM. A fake service
manager listens on the $NOTIFY_SOCKET datagram socket."""
import os
import signal
import socket
import time

from harness import check, run

MiB = 1 << 20


def receive(sock, wanted, timeout=10):
    sock.settimeout(timeout)
    seen = []
    while True:
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no {wanted} from sved within {timeout} s (got {seen})")
        seen.append(msg)
        if wanted in msg.split("\n"):
            return seen


def drain(sock, seconds):
    """Reads and drops whatever arrives for `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            sock.recv(4096)
        except socket.timeout:
            return


def check_silent(sock, unwanted, seconds):
    """Nothing `unwanted` arrives for `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            return
        check(unwanted not in msg.split("\n"), f"{unwanted} sent while the data path was stopped")


def test(make):
    node = make()
    conf = os.path.join(node.data_dir, "sved.conf")
    with open(conf, "w") as f:
        f.write("# a test configuration\n"
                "cache-size = 8M\n"
                "log-level info   # comments end a line\n"
                "io-requests 2048\n"
                "max-connections=64\n")
    path = os.path.join(node.data_dir, "notify.sock")
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(path)
    node.start(["--config", conf], env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    receive(manager, "READY=1")
    check(node.ctl_json("node", "show")["size_bytes"] == 8 * MiB, "cache-size from the file")
    receive(manager, "WATCHDOG=1", timeout=5)
    receive(manager, "WATCHDOG=1", timeout=5)
    check(node.stop() == 0, "sved did not stop cleanly")
    receive(manager, "STOPPING=1")

    # Keep-alives stop while the data path does not answer (the I/O process
    # stopped: no core answers), and resume when it does; --watchdog-ms is
    # long enough that the supervisor does not replace it meanwhile.
    node.start(["--config", conf, "--watchdog-ms", "20000"],
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    receive(manager, "READY=1")
    receive(manager, "WATCHDOG=1", timeout=5)
    io = node.io_pid()
    os.kill(io, signal.SIGSTOP)
    try:
        # A feed written just before it stopped may still be passed on in
        # the next half second; after that, three 0.4 s periods without one.
        drain(manager, 0.5)
        check_silent(manager, "WATCHDOG=1", 1.2)
    finally:
        os.kill(io, signal.SIGCONT)
    receive(manager, "WATCHDOG=1", timeout=5)
    check(node.ctl_json("daemon", "status")["restarts"] == 0, "the stopped I/O process was replaced")
    check(node.stop() == 0, "sved did not stop cleanly")
    receive(manager, "STOPPING=1")

    # The command line wins over the file; a bad file is refused clearly.
    node.start(["--config", conf, "--cache-size", "16M"])
    check(node.ctl_json("node", "show")["size_bytes"] == 16 * MiB, "command line over the file")
    node.stop()
    with open(conf, "a") as f:
        f.write("cores 1 2\n")
    node.start(["--config", conf], expect_ok=False)
    node.wait_exit()
    check(node.proc.returncode == 2 and "one option and one value a line" in node.read_log(),
          f"a bad configuration file: {node.read_log()}")
    node.start(["--config", os.path.join(node.data_dir, "missing.conf")], expect_ok=False)
    node.wait_exit()
    check(node.proc.returncode == 2 and "cannot read configuration file" in node.read_log(),
          "a missing configuration file")


run(test)

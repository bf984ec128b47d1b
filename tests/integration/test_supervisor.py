"""sved's two processes: the configuration process (the sved started)
watches its child, the I/O process, and restarts it when it dies or hangs.

  1. Alone: the I/O process is SIGKILLed while a host is connecting; the
     host waits in the listen backlog (the configuration process keeps the
     sockets) and is served by the next I/O process, with the data intact;
     its write, at once, is held by the new back end for its first half
     second (node stats ring.held), then written.
  2. The I/O process hangs (SIGSTOP): the watchdog kills it within its
     limit and starts another.
  3. In a cluster: the I/O process of a node of a write-back I/O group is
     SIGKILLed under a verifying writer; the partner covers, the restarted
     node rejoins on its own, and every acknowledged write reads back from
     both nodes.
  4. SIGTERM stops both processes cleanly."""
import os
import re
import signal
import time

from cluster_harness import Cluster
from harness import check, qemu_io, run, wait_until
EIO = 5  # a request a fault failed, unacknowledged: the host retries
from verifier import VerifyingWriter, check_writes

MiB = 1 << 20


def gone(pid):
    """No such process, or only its zombie left for init to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def daemon(node):
    return node.ctl_json("daemon", "status")


def restarted(node, count):
    def ok():
        s = daemon(node)
        return s["restarts"] == count and s["io_serving"]
    wait_until(ok, f"restart {count} of node {node.data_dir}'s I/O process", timeout=30)
    return daemon(node)


def alone(make):
    node = make()
    node.start(["--watchdog-ms", "600"])
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 64 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    node.ctl("vdisk", "create", "v", "--pool", "p", "--size", "16M")
    qemu_io(node.url("v"), "write -P 0x5a 0 4M")
    first = daemon(node)
    check(first["io_pid"] == node.io_pid() and first["supervisor_pid"] == node.proc.pid,
          f"daemon status: {first}")

    # 1. A crash while a host connects.
    os.kill(first["io_pid"], signal.SIGKILL)
    # An admin request meanwhile waits for the next I/O process.
    check(len(node.ctl_json("vdisk", "list")) == 1, "an admin request during the restart")
    # A host connects while it restarts, and writes at once.
    qemu_io(node.url("v"), "write -P 0x5b 4M 1M", "read -P 0x5a 0 4M")
    s = restarted(node, 1)
    check("signal 9" in s["last_exit"] and s["io_pid"] != first["io_pid"], f"after a crash: {s}")
    # Its first write came within the new process's first half second (the
    # host waited in the backlog): the back end held it until its
    # predecessor's writes could no longer land (docs/cache.md).
    held = sum(c["ring"]["held"] for c in node.ctl_json("node", "stats")["cores"])
    check(held >= 1, f"the first write after the restart was not held by the back end ({held})")
    qemu_io(node.url("v"), "read -P 0x5b 4M 1M")

    # 2. A hang: no heartbeat within 600 ms.
    os.kill(s["io_pid"], signal.SIGSTOP)
    stopped = time.monotonic()
    s = restarted(node, 2)
    took = time.monotonic() - stopped
    check("is hung" in node.read_log(), "the watchdog did not say why it killed")
    print(f"a hung I/O process was replaced {took:.2f} s after it stopped")
    # Killed once silent for --watchdog-ms (0.6 s), a new one started at once
    # (the first restart has no pause): the bound is the watchdog period and
    # one start-up, which takes well under 5 s even on a loaded machine.
    check(took < 0.6 + 5, f"a hung I/O process took {took:.2f} s to be replaced")
    qemu_io(node.url("v"), "read -P 0x5a 0 4M", "write -P 0x6b 4M 1M")

    # 3. Crashing again soon after each start: the pause before the next
    # start doubles (100 ms at least, 5 s at most), and is really waited.
    gaps = []
    for k in (3, 4, 5):
        os.kill(node.io_pid(), signal.SIGKILL)
        killed = time.monotonic()
        restarted(node, k)
        gaps.append(time.monotonic() - killed)
    pauses = {int(n): int(ms) for n, ms in re.findall(r"restart (\d+)\) in (\d+) ms", node.read_log())}
    check(all(k in pauses for k in (3, 4, 5)), f"restarts without a pause: {pauses}")
    check(pauses[3] >= 100 and pauses[4] == min(5000, 2 * pauses[3]) and
          pauses[5] == min(5000, 2 * pauses[4]), f"the restart pause does not grow: {pauses}")
    for k, gap in zip((3, 4, 5), gaps):
        check(gap >= pauses[k] / 1000, f"restart {k} came {gap:.2f} s after the crash, "
                                       f"before its {pauses[k]} ms pause")
    qemu_io(node.url("v"), "read -P 0x5a 0 4M")

    # 4. SIGTERM: the configuration process stops its I/O process first.
    io_pid = node.io_pid()
    check(node.stop() == 0, "sved did not stop cleanly")
    check(not os.path.exists(f"/proc/{io_pid}"), "the I/O process outlived sved")
    node.start()
    qemu_io(node.url("v"), "read -P 0x5a 0 4M", "read -P 0x6b 4M 1M")

    # 5. sved itself killed: its I/O process does not outlive it.
    io_pid = node.io_pid()
    node.kill()
    wait_until(lambda: gone(io_pid), "the I/O process to die with sved", timeout=10)


def in_cluster(make):
    c = Cluster(make, 3, extra=["--cache-size", "4M", "--watchdog-ms", "1000"])
    c.form()
    n1, n2 = c[1], c[2]
    c.group_vdisk("v", 16, 64)
    blocks = 4096
    writer = VerifyingWriter([n1.nbd_port, n2.nbd_port], "v", blocks, seed=7, errors=(EIO,))
    writer.move_to(0, blocks // 2)
    writer.start()
    wait_until(lambda: writer.writes_acked >= 2000, "2000 writes")
    check(n1.ctl_json("node", "show")["dirty_bytes"] > 0, "node 1 holds no dirty data")
    os.kill(n1.io_pid(), signal.SIGKILL)
    writer.move_to(blocks // 2, blocks // 2)  # later writes must not hide a loss
    acked = writer.writes_acked
    wait_until(lambda: writer.writes_acked >= acked + 1000, "writes through the partner")
    restarted(n1, 1)
    # The battery dump: the dead process's NVRAM files were made durable
    # before the next one mapped them.
    check("non-volatile memory files" in n1.read_log(), "no battery dump after the crash")
    # It rejoins on its own: nobody restarts or re-adds it.
    c.wait_serving([1, 2, 3], 1, timeout=30)
    writer.stop()
    check_writes(writer, [n1, n2], "an I/O process killed under writes")


def test(make):
    alone(make)
    in_cluster(make)


run(test)

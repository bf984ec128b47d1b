"""Bad input gets a clear error and loses nothing: admin mistakes, NBD
requests outside the disk, oversized requests and malformed handshakes,
a locked data dir, a busy address and corrupt metadata."""
import os
import socket
import struct
import subprocess

from harness import SVED, RawNbd, Sved, check, qemu_io, run

MiB = 1 << 20
EINVAL, ENOSPC = 22, 28


def test(make):
    node = make().start()
    node.ctl("mdisk", "add", "a", node.make_file("a.img", 34 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "16M", "a")
    node.ctl("vdisk", "create", "v", "--pool", "p", "--size", "16M")
    qemu_io(node.url("v"), "write -P 0x3c 0 1M")

    # Admin mistakes: each a one-line error, nothing changed.
    node.ctl_fails("vdisk", "create", "big", "--pool", "p", "--size", "17M", contains="cannot hold")
    node.ctl_fails("vdisk", "create", "x", "--pool", "p", "--size", "12Q", contains="invalid size")
    node.ctl_fails("vdisk", "create", "x", "--pool", "nopool", "--size", "1M", contains="no pool")
    node.ctl_fails("vdisk", "create", "v", "--pool", "p", "--size", "1M", contains="exists")
    # A node alone has no I/O groups, no cluster nodes and no cluster.
    node.ctl_fails("iogrp", "create", "io0", "1", "2", contains="stands alone")
    node.ctl_fails("vdisk", "create", "y", "--pool", "p", "--size", "1M", "--iogrp", "io0",
                   contains="no I/O group")
    node.ctl_fails("iogrp", "create", "io0", "1", contains="2 required")
    node.ctl_fails("cluster", "create", "c", contains="without --cluster")
    node.ctl_fails("vdisk", "expand", "v", "--size", "8M", contains="shrinking")
    node.ctl_fails("mdisk", "remove", "a", contains="used by pool")
    node.ctl_fails("pool", "delete", "p", contains="used by vdisk")
    node.ctl_fails("pool", "create", "q", "--extent-size", "3M", "a", contains="power of two")
    node.ctl_fails("pool", "create", "q", "a", contains="already belongs")
    node.ctl_fails("mdisk", "add", "b", "/nonexistent/disk.img", contains="No such file")
    node.ctl_fails("mdisk", "add", "b", "/dev/null", contains="not a regular file or block device")
    node.ctl_fails("vdisk", "show", "nothere", contains="no vdisk")
    node.ctl_fails("vdisk", "frobnicate", "v", contains="unknown command")
    check(len(node.ctl_json("vdisk", "list")) == 1, "a failed command changed the config")

    # A pool out of extents gets more with addmdisk, online; what cannot
    # join is refused and changes nothing.
    node.ctl_fails("vdisk", "create", "w", "--pool", "p", "--size", "32M", contains="cannot hold")
    node.ctl("mdisk", "add", "b", node.make_file("b.img", 34 * MiB))
    node.ctl("mdisk", "add", "tiny", node.make_file("tiny.img", 8 * MiB))
    node.ctl_fails("pool", "addmdisk", "nopool", "b", contains="no pool")
    node.ctl_fails("pool", "addmdisk", "p", "a", contains="already belongs")
    node.ctl_fails("pool", "addmdisk", "p", "b", "b", contains="named twice")
    node.ctl_fails("pool", "addmdisk", "p", "tiny", contains="smaller than one extent")
    node.ctl_fails("pool", "addmdisk", "p", "zz", contains="no mdisk")
    check(node.ctl_json("pool", "list")[0]["mdisks"] == ["a"], "a failed addmdisk changed the pool")
    grown = node.ctl_json("pool", "addmdisk", "p", "b")
    check(grown["free"] == 48 * MiB, f"addmdisk: {grown}")
    node.ctl("vdisk", "create", "w", "--pool", "p", "--size", "32M")
    qemu_io(node.url("w"), "write -P 0x5a 0 32M", "read -P 0x5a 0 32M")
    qemu_io(node.url("v"), "read -P 0x3c 0 1M")
    node.ctl("vdisk", "delete", "w")

    # Another configuration's mdisk is never overwritten.
    other = make().start()
    foreign = other.make_file("f.img", 8 * MiB)
    other.ctl("mdisk", "add", "f", foreign)
    node.ctl_fails("mdisk", "add", "f", foreign, contains="another SVE configuration")
    other.stop()

    # NBD: outside the disk -> EINVAL for reads, ENOSPC for writes; the
    # connection stays usable.
    c = RawNbd(node.nbd_port, "v")
    check(c.size == 16 * MiB, f"export size {c.size}")
    c.request(0, 16 * MiB - 512, 1024, cookie=7)
    err, cookie, _ = c.reply()
    check((err, cookie) == (EINVAL, 7), f"read past end: {err}")
    c.request(1, 16 * MiB, 512, payload=b"\0" * 512, cookie=8)
    check(c.reply()[0] == ENOSPC, "write past end should be ENOSPC")
    c.request(0, 1 << 63, 512, cookie=9)
    check(c.reply()[0] == EINVAL, "overflowing offset should be EINVAL")
    # offset + length wraps past 2^64 to a small number inside the disk.
    c.request(0, (1 << 64) - 4096, 4096, cookie=20)
    check(c.reply()[0] == EINVAL, "a read whose range wraps should be EINVAL")
    c.request(1, (1 << 64) - 4096, 8192, payload=b"\1" * 8192, cookie=21)
    check(c.reply()[0] == ENOSPC, "a write whose range wraps should be ENOSPC")
    c.request(9, 0, 0, cookie=10)  # unknown command
    check(c.reply()[0] == EINVAL, "unknown command should be EINVAL")
    c.request(0, 0, 4096, flags=0x40, cookie=11)  # unknown flag
    check(c.reply()[0] == EINVAL, "unknown flag should be EINVAL")
    # What needs structured replies, asked without them: BLOCK_STATUS (7)
    # and a read with DF (1 << 2). CACHE (5) is fine: a read that sends
    # no data back.
    c.request(7, 0, 4096, cookie=22)
    check(c.reply()[:2] == (EINVAL, 22), "block status without a context should be EINVAL")
    c.request(0, 0, 4096, flags=1 << 2, cookie=23)
    check(c.reply()[:2] == (EINVAL, 23), "DF without structured replies should be EINVAL")
    c.request(5, 0, 65536, cookie=24)
    check(c.reply()[:2] == (0, 24), "CACHE should succeed")
    c.request(0, 0, 4096, cookie=12)
    err, _, data = c.reply(4096)
    check(err == 0 and data == b"\x3c" * 4096, "connection unusable after errors")

    daemon = node.ctl_json("daemon", "status")
    # Requests over the advertised maximum (32 MiB) are refused, and the
    # connection goes on: a read at once, a write once its payload (read
    # and dropped) is past.
    other_conn = RawNbd(node.nbd_port, "v")
    c.request(0, 0, 64 * MiB, cookie=13)
    check(c.reply()[:2] == (EINVAL, 13), "an oversized read should be EINVAL")
    c.request(1, 0, 64 * MiB + 1, payload=b"\x77" * (64 * MiB + 1), cookie=14)
    check(c.reply()[:2] == (EINVAL, 14), "an oversized write should be EINVAL")
    c.request(0, 0, 4096, cookie=17)
    err, _, data = c.reply(4096)
    check(err == 0 and data == b"\x3c" * 4096,
          "the connection after oversized requests: nothing of the dropped payload written")
    other_conn.request(0, 0, 512, cookie=14)
    check(other_conn.reply(512)[0] == 0, "other connection affected")
    c.close()
    after = node.ctl_json("daemon", "status")
    check(after["restarts"] == daemon["restarts"] and after["io_pid"] == daemon["io_pid"],
          f"an oversized request restarted a process: {daemon} -> {after}")

    # A request with bad magic closes that connection only.
    bad = RawNbd(node.nbd_port, "v")
    bad.s.sendall(struct.pack(">IHHQQI", 0x12345678, 0, 0, 16, 0, 512))
    check(bad.closed_by_server(), "a request with bad magic did not close the connection")
    other_conn.request(0, 0, 512, cookie=16)
    check(other_conn.reply(512)[0] == 0, "other connection affected by bad magic")

    # A malformed handshake closes that connection only.
    s = socket.create_connection(("127.0.0.1", node.nbd_port))
    s.recv(18)
    s.sendall(struct.pack(">I", 3) + b"X" * 16)
    check(s.recv(1) == b"", "malformed option was not answered by closing")
    other_conn.request(0, 0, 512, cookie=15)
    check(other_conn.reply(512)[0] == 0, "other connection affected by a bad handshake")
    other_conn.close()
    qemu_io(node.url("v"), "read -P 0x3c 0 1M")
    r = subprocess.run(["nbdinfo", node.url("nothere")], capture_output=True, text=True)
    check(r.returncode != 0, "unknown export accepted")

    # sved refuses a locked data dir and a busy address.
    second = subprocess.run([SVED, "--data-dir", node.data_dir, "--admin", "127.0.0.1:1",
                             "--nbd", "127.0.0.1:1"], capture_output=True, text=True, timeout=30)
    check(second.returncode != 0 and "locked by another sved" in second.stderr,
          f"locked data dir: {second.stderr}")
    third = make()
    busy = subprocess.run([SVED, "--data-dir", third.data_dir, "--admin", node.admin,
                           "--nbd", f"127.0.0.1:{third.nbd_port}"],
                          capture_output=True, text=True, timeout=30)
    check(busy.returncode != 0 and "cannot listen" in busy.stderr, f"busy address: {busy.stderr}")

    # Corrupt metadata: refuse to start, leave the files alone.
    node.stop()
    for slot in ("config.a", "config.b"):
        with open(os.path.join(node.data_dir, slot), "r+b") as f:
            f.seek(30)
            f.write(b"\xff" * 8)
    before = {s: open(os.path.join(node.data_dir, s), "rb").read() for s in ("config.a", "config.b")}
    node.start(expect_ok=False)
    rc = node.wait_exit()
    check(rc != 0 and "corrupt" in node.read_log(), f"corrupt metadata: rc={rc}")
    after = {s: open(os.path.join(node.data_dir, s), "rb").read() for s in ("config.a", "config.b")}
    check(before == after, "sved rewrote metadata it could not read")


run(test)

"""An mdisk on a real block device (a loop device)."""
import os
import subprocess
import sys

from harness import SKIP, check, qemu_io, run

MiB = 1 << 20


def test(make):
    node = make()
    backing = node.make_file("loop-backing.img", 96 * MiB)
    r = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True)
    if r.returncode != 0:
        print("no loop device available:", r.stderr, file=sys.stderr)
        return SKIP
    loop = r.stdout.strip()
    try:
        node.start()
        node.ctl("mdisk", "add", "blk", loop)
        node.ctl("mdisk", "add", "file", node.make_file("f.img", 64 * MiB))
        check({m["name"]: m["path"] for m in node.ctl_json("mdisk", "list")}["blk"] == loop,
              "block device path")
        node.ctl("pool", "create", "p", "--extent-size", "4M", "blk", "file")
        node.ctl("vdisk", "create", "v", "--pool", "p", "--size", "64M")
        url = node.url("v")
        qemu_io(url, f"write -P 0x61 {4 * MiB - 4096} 8192", "write -P 0x62 1000 3000",
                "write -z 16M 4M", f"discard {24 * MiB} 4M", "flush")
        qemu_io(url, f"read -P 0x61 {4 * MiB - 4096} 8192", "read -P 0x62 1000 3000",
                "read -P 0 16M 4M")
        node.stop()
        node.start()
        qemu_io(node.url("v"), f"read -P 0x61 {4 * MiB - 4096} 8192")
    finally:
        node.stop()
        subprocess.run(["losetup", "-d", loop])


run(test)

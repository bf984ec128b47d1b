"""An mdisk on a real block device (a loop device)."""
import os
import shutil
import subprocess
import sys
import tempfile

from harness import SKIP, check, qemu_io, run

MiB = 1 << 20


def attach(path):
    return subprocess.run(["losetup", "-f", "--show", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def test(make):
    node = make()
    # Outside the data dir: the label search must find it under /dev/loop*,
    # not as a file of the data dir.
    outside = tempfile.mkdtemp(prefix="sve-loop-")
    backing = os.path.join(outside, "loop-backing.img")
    with open(backing, "wb") as f:
        f.truncate(96 * MiB)
    r = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True)
    if r.returncode != 0:
        print("no loop device available:", r.stderr, file=sys.stderr)
        return SKIP
    loop = r.stdout.strip()
    loops = [loop]
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

        # The device comes back under another /dev/loop name: found by its
        # label at start-up (its old name now holds another device).
        node.stop()
        subprocess.run(["losetup", "-d", loop], check=True)
        placeholder = attach(node.make_file("placeholder.img", 8 * MiB))
        loops.append(placeholder)
        moved = attach(backing)
        loops.append(moved)
        check(moved != loop, f"the device came back as {moved} again")
        node.start()
        blk = {m["name"]: m for m in node.ctl_json("mdisk", "list")}["blk"]
        check(blk["path"] == moved and blk["status"] == "online",
              f"the moved block device was not found by its label: {blk}")
        qemu_io(node.url("v"), f"read -P 0x61 {4 * MiB - 4096} 8192", "read -P 0x62 1000 3000")
    finally:
        node.stop()
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        shutil.rmtree(outside, ignore_errors=True)


run(test)

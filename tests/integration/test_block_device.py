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
        # qemu's no-fallback zeroing (NBD's FAST_ZERO): the device would
        # write the zeros, so a range on it fails at once with ENOTSUP and
        # changes nothing; with unmapping allowed it is punched, fast.
        # (The last extent on the device: the checks below read the others.)
        held = [e["mdisk"] for e in node.ctl_json("vdisk", "show", "v")["extents"]]
        on_blk = max(i for i, m in enumerate(held) if m == "blk")
        check(on_blk >= 8, f"extents on the device: {held}")
        at = on_blk * 4 * MiB
        qemu_io(url, f"write -P 0x63 {at} 4M")
        r = qemu_io(url, f"write -z -n {at} 4M", ok=False)
        check(r.returncode != 0 and "not supported" in (r.stdout + r.stderr).lower(),
              f"fast zero on a block device: {r.stdout} {r.stderr}")
        qemu_io(url, f"read -P 0x63 {at} 4M")
        qemu_io(url, f"write -z -n -u {at} 4M")
        qemu_io(url, f"read -P 0 {at} 4M")
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
        check_by_id(node, outside)
    finally:
        node.stop()
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        shutil.rmtree(outside, ignore_errors=True)


def check_by_id(node, outside):
    """The other half of the label search: an mdisk that moved to where only
    a link under /dev/disk/by-id leads (as a disk that came back under
    another /dev/sdX name would) is found there by its label."""
    by_id = "/dev/disk/by-id"
    # What this test makes, it removes again: nothing else under /dev/disk.
    made = "/dev/disk" if not os.path.isdir("/dev/disk") else (
        by_id if not os.path.isdir(by_id) else None)
    try:
        os.makedirs(by_id, exist_ok=True)
    except OSError as e:
        print(f"cannot make {by_id}: {e}; by-id search not tested", file=sys.stderr)
        return
    first = os.path.join(outside, "by-id-first.img")
    with open(first, "wb") as f:
        f.truncate(64 * MiB)
    link = os.path.join(by_id, f"sve-test-{os.getpid()}")
    try:
        node.ctl("mdisk", "add", "byid", first)
        node.ctl("pool", "create", "q", "--extent-size", "4M", "byid")
        node.ctl("vdisk", "create", "w", "--pool", "q", "--size", "32M")
        qemu_io(node.url("w"), "write -P 0x71 8M 64k")
        node.stop()
        elsewhere = os.path.join(outside, "moved-away")
        os.makedirs(elsewhere)
        moved = os.path.join(elsewhere, "renamed.img")
        os.rename(first, moved)
        os.symlink(moved, link)
        node.start()
        m = {m["name"]: m for m in node.ctl_json("mdisk", "list")}["byid"]
        check(m["path"] == link and m["status"] == "online",
              f"the mdisk behind {link} was not found by its label: {m}")
        qemu_io(node.url("w"), "read -P 0x71 8M 64k")
    finally:
        if os.path.islink(link):
            os.unlink(link)
        if made:
            shutil.rmtree(made, ignore_errors=True)


run(test)

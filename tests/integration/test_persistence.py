"""Data and configuration survive a clean restart, a SIGKILL, and an mdisk
file that moved to another path; a SIGKILL in the middle of a stream of
configuration changes leaves a consistent configuration."""
import os
import random
import subprocess
import threading

from harness import SVECTL, check, qemu_io, run

MiB = 1 << 20


def check_consistent(node):
    pools = {p["name"]: p for p in node.ctl_json("pool", "list")}
    used = {}
    for v in node.ctl_json("vdisk", "list"):
        show = node.ctl_json("vdisk", "show", v["name"])
        ext = show["extent_size"]
        check(len(show["extents"]) == (show["size"] + ext - 1) // ext,
              f"{v['name']}: {len(show['extents'])} extents for {show['size']} bytes")
        for e in show["extents"]:
            key = (e["mdisk"], e["mdisk_extent"])
            check(key not in used, f"extent {key} used by {used.get(key)} and {v['name']}")
            used[key] = v["name"]
    p = pools["p"]
    check(p["extents_free"] + len(used) == p["extents_total"], f"pool accounting: {p}, {len(used)} used")


def test(make):
    node = make().start()
    for name in ("a", "b"):
        node.ctl("mdisk", "add", name, node.make_file(name + ".img", 64 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "2M", "a", "b")
    node.ctl("vdisk", "create", "v", "--pool", "p", "--size", "40M")
    url = node.url("v")
    qemu_io(url, "write -P 0x5a 0 4M", f"write -P 0xa5 {38 * MiB} 2M")
    before = node.ctl_json("vdisk", "show", "v")
    before.pop("cache")  # the cache's figures start again with the process

    check(node.stop() == 0, "sved did not exit 0 on SIGTERM")
    node.start()
    url = node.url("v")
    qemu_io(url, "read -P 0x5a 0 4M", f"read -P 0xa5 {38 * MiB} 2M")
    after = node.ctl_json("vdisk", "show", "v")
    after.pop("cache")
    check(after == before, "extent map changed over a restart")

    # SIGKILL after acknowledged, flushed writes.
    qemu_io(url, "write -P 0x77 8M 1M", "flush")
    node.kill()
    node.start()
    qemu_io(node.url("v"), "read -P 0x77 8M 1M")

    # The mdisk file moves; its label finds it again.
    node.stop()
    os.rename(os.path.join(node.data_dir, "b.img"), os.path.join(node.data_dir, "moved-b.img"))
    node.start()
    mdisks = {m["name"]: m for m in node.ctl_json("mdisk", "list")}
    check(mdisks["b"]["status"] == "online" and mdisks["b"]["path"].endswith("moved-b.img"),
          f"moved mdisk not found: {mdisks['b']}")
    qemu_io(node.url("v"), "read -P 0x5a 0 4M", f"read -P 0xa5 {38 * MiB} 2M")

    # SIGKILL in the middle of a stream of configuration changes: every
    # change svectl saw acknowledged survives; only the one in flight at the
    # kill may or may not have happened. SVE_TEST_SEED replays the kill points.
    seed = int(os.environ.get("SVE_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"kill points: SVE_TEST_SEED={seed}")
    rng = random.Random(seed)
    for round_ in range(4):
        stop = threading.Event()
        present, absent, uncertain = set(), set(), set()

        def svectl(*args):
            return subprocess.run([SVECTL, "--admin", node.admin, *args],
                                  capture_output=True).returncode == 0

        def churn():
            i = 0
            while not stop.is_set():
                name = f"c{round_}_{i}"
                uncertain.add(name)
                if not svectl("vdisk", "create", name, "--pool", "p", "--size", "2M"):
                    return  # the node is gone: this one may or may not exist
                present.add(name)
                if i % 2:
                    if not svectl("vdisk", "delete", name):
                        return
                    present.discard(name)
                    absent.add(name)
                uncertain.discard(name)
                i += 1

        t = threading.Thread(target=churn)
        t.start()
        stop.wait(rng.uniform(0.05, 0.4))
        node.kill()
        stop.set()
        t.join()
        node.start()
        check_consistent(node)
        names = {v["name"] for v in node.ctl_json("vdisk", "list")}
        check(present - uncertain <= names,
              f"round {round_}: acknowledged creates lost: {sorted(present - uncertain - names)}")
        check(not (absent - uncertain) & names,
              f"round {round_}: acknowledged deletes undone: {sorted((absent - uncertain) & names)}")
        check(present or absent or uncertain, "no configuration change was tried")
        print(f"round {round_}: {len(present)} created, {len(absent)} deleted, "
              f"{len(uncertain)} in flight at the kill")
        qemu_io(node.url("v"), "read -P 0x5a 0 4M")
        for v in node.ctl_json("vdisk", "list"):
            if v["name"] != "v":
                node.ctl("vdisk", "delete", v["name"])

run(test)

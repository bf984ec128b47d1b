"""A long chaos run, by hand (not in CTest: minutes): three nodes as
test_chaos.py builds them, `svectl chaos run` with every fault kind (or
those given), and, with --admin, configuration commands sent to random
nodes throughout (consistency groups created, harmless to the workload's
access), each of which must be committed once if it was answered OK. The
report and the three nodes' logs are kept in OUT.

    SVE_BUILD_DIR=build python3 tests/integration/chaos_long.py \\
        --duration 150 --seed 13 --admin --out /tmp/chaos13

Exits non-zero when the chaos run does (a lost write, a wrong read, blocks
not read back) or an acknowledged command is missing or doubled."""
import argparse
import collections
import os
import random
import shutil
import subprocess
import threading
import time

from cluster_harness import Cluster
from harness import SVECTL, check, run

ARGS = argparse.ArgumentParser()
ARGS.add_argument("--duration", type=int, default=150)
ARGS.add_argument("--seed", type=int, default=11)
ARGS.add_argument("--faults", default="all")
ARGS.add_argument("--rate", type=int, default=12)
ARGS.add_argument("--admin", action="store_true")
ARGS.add_argument("--out", default="chaos-long")
OPT = ARGS.parse_args()


def test(make):
    c = Cluster(make, 3, extra=["--cache-size", "8M", "--watchdog-ms", "1000", "--enable-chaos"])
    c.form()
    c.group_vdisk("chaos", 32, 128)
    acked, stop = [], threading.Event()

    def admin():
        rng, k = random.Random(OPT.seed), 0
        while not stop.is_set():
            k += 1
            node = c[rng.choice((1, 2, 3))]
            try:
                r = subprocess.run([SVECTL, "--admin", node.admin, "fcconsistgrp", "create",
                                    f"g{k}"], capture_output=True, text=True, timeout=40)
                if r.returncode == 0:
                    acked.append(f"g{k}")
            except subprocess.TimeoutExpired:
                pass
            stop.wait(0.2)

    worker = threading.Thread(target=admin)
    if OPT.admin:
        worker.start()
    nodes = ",".join(c[i].admin for i in (1, 2, 3))
    r = subprocess.run([SVECTL, "--admin", c[1].admin, "chaos", "run", "--duration",
                        str(OPT.duration), "--seed", str(OPT.seed), "--faults", OPT.faults,
                        "--rate", str(OPT.rate), "--nodes", nodes],
                       capture_output=True, text=True, timeout=OPT.duration + 300)
    stop.set()
    if OPT.admin:
        worker.join()
    os.makedirs(OPT.out, exist_ok=True)
    with open(os.path.join(OPT.out, "report.txt"), "w") as f:
        f.write(r.stdout + r.stderr)
    for i in (1, 2, 3):
        shutil.copy(c[i].log_path, os.path.join(OPT.out, f"node{i}.log"))
    print("\n".join(l for l in r.stdout.splitlines() if not l.startswith("  fault")))
    check(r.returncode == 0, f"the chaos run failed: see {OPT.out}")
    if OPT.admin:
        c.wait_serving([1, 2, 3], 1, timeout=60)
        groups = collections.Counter(g["name"] for g in c[1].ctl_json("fcconsistgrp", "list"))
        missing = [g for g in acked if g not in groups]
        doubled = [g for g, n in groups.items() if n > 1]
        print(f"admin: {len(acked)} commands answered OK, {len(groups)} groups exist")
        check(not missing and not doubled, f"commands lost {missing[:5]} or doubled {doubled[:5]}")


run(test)

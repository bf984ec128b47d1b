"""The chaos monkey: `svectl chaos start/stop/report` on one node, with clear
errors for what it cannot do, and `svectl chaos run`, the monkeys of three
nodes and a verifying workload through NBD, reporting faults, I/O,
unavailability, lost writes and wrong reads; it exits non-zero when data
is wrong (shown by a second writer scribbling over the workload's blocks)."""
import re
import subprocess
import threading

from cluster_harness import Cluster
from harness import SVECTL, check, qemu_io, run, wait_until

MiB = 1 << 20


def chaos_run(node, *args):
    r = subprocess.run([SVECTL, "--admin", node.admin, "chaos", "run", *args],
                       capture_output=True, text=True, timeout=400)
    print(r.stdout, r.stderr)
    return r


def number(report, label):
    m = re.search(rf"^{label}: (\d+)", report, re.M)
    check(m, f"no '{label}' line in the report:\n{report}")
    return int(m.group(1))


def commands(make):
    alone = make()
    alone.start(["--single-process", "--enable-chaos"])
    check(alone.ctl_json("daemon", "status")["supervised"] is False, "single process status")
    alone.ctl_fails("chaos", "start", "--faults", "crash-io",
                    contains="needs sved's configuration process")
    alone.stop()

    node = make()
    node.start(["--enable-chaos"])
    node.ctl_fails("chaos", "start", "--faults", "partition,meteor", contains="'meteor'")
    node.ctl_fails("chaos", "start", "--rate", "0", contains="--rate")
    node.ctl_fails("chaos", "inject", "meteor", contains="unknown fault kind")
    node.ctl_fails("chaos", "inject", "mdisk-error", contains="no target")  # no mdisk yet
    started = node.ctl_json("chaos", "start", "--seed", "9", "--faults", "mdisk-stall",
                            "--rate", "600")
    check(started["running"] and started["seed"] == 9, f"chaos start: {started}")
    node.ctl_fails("chaos", "start", contains="already runs here")
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 32 * MiB))
    wait_until(lambda: node.ctl_json("chaos", "report")["injected"] >= 2, "two mdisk stalls")
    report = node.ctl_json("chaos", "report")
    check(all(e["kind"] == "mdisk-stall" and e["seed"] == 9 and e["time_ms"] > 0
              for e in report["log"]), f"the fault log: {report['log']}")
    stopped = node.ctl_json("chaos", "stop")
    check(stopped["running"] and not node.ctl_json("chaos", "report")["running"], "chaos stop")

    # kill-node: the node stays down for the fault's duration, then its
    # configuration process starts it again, and its monkey goes on.
    node.ctl("chaos", "start", "--seed", "4", "--faults", "kill-node", "--rate", "600")
    wait_until(lambda: node.ctl_json("daemon", "status")["restarts"] >= 1 and
               node.ctl_json("daemon", "status")["io_serving"], "a restart after kill-node",
               timeout=30)
    first = node.ctl_json("chaos", "report")["log"][0]
    node.ctl("chaos", "stop")
    check(first["kind"] == "kill-node" and "signal 9" in node.ctl_json("daemon", "status")["last_exit"],
          f"kill-node: {first}")
    check(f"in {first['duration_ms']} ms" in node.read_log(),
          f"the node was not kept down for {first['duration_ms']} ms")

    # A verifying workload that cannot fail proves nothing: another writer
    # scribbling over its blocks must make the run fail.
    node.ctl("pool", "create", "p", "--extent-size", "4M", "m0")
    node.ctl("vdisk", "create", "chaos", "--pool", "p", "--size", "16M")
    done = threading.Event()

    def scribbler():
        while not done.is_set():
            qemu_io(node.url("chaos"), "write -P 0x77 0 64k", ok=False)

    t = threading.Thread(target=scribbler)
    t.start()
    try:
        r = chaos_run(node, "--duration", "2", "--faults", "mdisk-stall", "--rate", "1")
    finally:
        done.set()
        t.join()
    check(r.returncode != 0, "a run whose blocks were overwritten passed")
    check(number(r.stdout, "wrong reads") + number(r.stdout, "acknowledged writes lost") > 0,
          "the overwritten blocks were not reported")
    node.stop()


def cluster(make):
    c = Cluster(make, 3, extra=["--cache-size", "8M", "--watchdog-ms", "1000", "--enable-chaos"])
    c.form()
    n1 = c[1]
    c.group_vdisk("chaos", 32, 128)

    # kill-actor: the cluster actor replaces a killed heartbeat link; the
    # node goes on in the same process.
    c[2].ctl("chaos", "start", "--seed", "3", "--faults", "kill-actor", "--rate", "600")
    wait_until(lambda: c[2].ctl_json("chaos", "report")["injected"] >= 3, "three actors killed")
    c[2].ctl("chaos", "stop")
    check("starting another" in c[2].read_log(), "no heartbeat link was replaced")
    check(c[2].ctl_json("daemon", "status")["restarts"] == 0, "killing an actor restarted sved")
    c.wait_serving([1, 2, 3], 1)

    nodes = ",".join(c[i].admin for i in (1, 2, 3))
    r = chaos_run(n1, "--duration", "20", "--seed", "5", "--rate", "12", "--nodes", nodes)
    check(r.returncode == 0, "the chaos run failed")
    check(number(r.stdout, "acknowledged writes lost") == 0, "writes lost")
    check(number(r.stdout, "wrong reads") == 0, "wrong reads")
    check(number(r.stdout, "faults injected") >= 5, "too few faults for a test")
    check(re.search(r"I/O done: (\d+) writes acknowledged", r.stdout) and
          int(re.search(r"I/O done: (\d+)", r.stdout).group(1)) > 1000, "too little I/O")
    check("(seed 5001)" in r.stdout and "unavailability windows:" in r.stdout,
          "faults are not shown with their seeds")
    # Every monkey stopped; the cluster serves with all three nodes.
    for i in (1, 2, 3):
        check(not c[i].ctl_json("chaos", "report")["running"], f"node {i}'s monkey runs on")
    c.wait_serving([1, 2, 3], 1)


def test(make):
    commands(make)
    cluster(make)


run(test)

"""Consistency groups and incremental mappings with real clients
(python3-libnbd) on a two-core node.

A consistency group of three mappings starts at one instant across its
three sources: a host writes a chain of dependent records (each sent only
once the one before it was acknowledged, spread over the three vdisks), and
on the targets every record present implies all earlier ones, in every
round of prepare, start and stop (once with `start --prep`), while a set
of standalone mappings started one after another shows that the check
can fail. An incremental
mapping, refreshed after three of its grains changed, copies those three
and no more (node stats), its target equal to its source; `fcmap start
--wait` follows the copy to its end (and `--prep` prepares it first). Its
history survives a SIGKILL of the I/O process: the refresh after the
restart copies the two grains changed before it; and one during a start:
the refresh after copies the three grains written during that start."""
import os
import signal

from dependent_writes import Chain, check_point_in_time, holes_below_top, records_on
from harness import check, run, wait_until
from libnbd_client import connect

MiB = 1 << 20
VDISK = 16 * MiB
SOURCES = ["a1", "a2", "a3"]
TARGETS = ["t1", "t2", "t3"]


def group_state(node, name):
    return node.ctl_json("fcconsistgrp", "show", name)["state"]


def test(make):
    node = make(cores=2).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 400 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    for v in SOURCES + TARGETS + ["u1", "u2", "u3", "inc_s", "inc_t"]:
        node.ctl("vdisk", "create", v, "--pool", "p", "--size", f"{VDISK // MiB}M")

    # The group and what a user can get wrong with it.
    node.ctl("fcconsistgrp", "create", "cg")
    node.ctl_fails("fcconsistgrp", "create", "cg", contains="exists")
    node.ctl_fails("fcconsistgrp", "prepare", "cg", contains="no mappings")
    node.ctl_fails("fcmap", "create", "--source", "a1", "--target", "t1", "--consistgrp", "nope",
                   contains="no consistency group")
    for i in range(3):
        node.ctl("fcmap", "create", "--source", SOURCES[i], "--target", TARGETS[i],
                 "--name", f"g{i}", "--copyrate", "0", "--consistgrp", "cg")
    check(node.ctl_json("fcconsistgrp", "show", "cg")["fcmaps"] == ["g0", "g1", "g2"],
          "the group's mappings")
    check(node.ctl_json("fcmap", "show", "g1")["consistgrp"] == "cg", "the mapping's group")
    node.ctl_fails("fcmap", "prepare", "g0", contains="fcconsistgrp prepare cg")
    node.ctl_fails("fcconsistgrp", "start", "cg", contains="prepare it first")

    chain = Chain([node.url(v) for v in SOURCES], VDISK)
    chain.start()
    for rnd in range(3):
        chain.wait_for(chain.next + 300)
        if rnd == 1:  # SVC's startfcconsistgrp -prep: both in one command
            node.ctl("fcconsistgrp", "start", "cg", "--prep")
        else:
            node.ctl("fcconsistgrp", "prepare", "cg")
            wait_until(lambda: group_state(node, "cg") == "prepared", "cg prepared")
            node.ctl("fcconsistgrp", "start", "cg")
        wait_until(lambda: group_state(node, "cg") == "copying", "cg copying")
        at_start = chain.next
        chain.wait_for(at_start + 300)  # the sources go on changing
        check_point_in_time([node.url(v) for v in TARGETS], VDISK, at_start, 300 * (rnd + 1),
                            f"round {rnd}")
        node.ctl("fcconsistgrp", "stop", "cg")
        check(group_state(node, "cg") == "stopped", "cg stopped")

    # The same check fails for mappings started one by one: the chain goes
    # on between their instants.
    for i, u in enumerate(["u1", "u2", "u3"]):
        node.ctl("fcmap", "create", "--source", SOURCES[i], "--target", u, "--name", f"s{i}",
                 "--copyrate", "0")
    for i in range(3):
        node.ctl("fcmap", "prepare", f"s{i}")
    for i in range(3):
        wait_until(lambda: node.ctl_json("fcmap", "show", f"s{i}")["state"] == "prepared",
                   f"s{i} prepared")
    for i in range(3):
        before = chain.next
        node.ctl("fcmap", "start", f"s{i}")
        wait_until(lambda: node.ctl_json("fcmap", "show", f"s{i}")["state"] == "copying",
                   f"s{i} copying")
        chain.wait_for(before + 200)
    chain.halt()
    chain.close()
    apart = holes_below_top(records_on([node.url(v) for v in ["u1", "u2", "u3"]], VDISK))
    print(f"standalone mappings started apart: {len(apart)} records missing below the top")
    check(apart, "standalone mappings started apart held a consistent set: the check cannot fail")
    for i in range(3):
        node.ctl("fcmap", "stop", f"s{i}")
        node.ctl("fcmap", "delete", f"s{i}")
    node.ctl_fails("fcconsistgrp", "delete", "cg", contains="--force")
    node.ctl("fcconsistgrp", "delete", "cg", "--force")
    check(node.ctl_json("fcmap", "show", "g0")["consistgrp"] == "", "standalone after the delete")
    for i in range(3):
        node.ctl("fcmap", "delete", f"g{i}")

    # Incremental: the refresh copies only what changed.
    h = connect(node.url("inc_s"))
    h.pwrite(b"\x5a" * VDISK, 0)
    node.ctl("fcmap", "create", "--source", "inc_s", "--target", "inc_t", "--name", "inc",
             "--copyrate", "150", "--incremental")
    grains = VDISK // (256 * 1024)

    def copies():
        fc = node.ctl_json("node", "stats")["flashcopy"]
        return fc["grain_copies"] + fc["background_copies"], fc["incremental_kept"]

    def refresh(prep=False):
        if prep:
            r = node.ctl("fcmap", "start", "inc", "--prep", "--wait")
        else:
            node.ctl("fcmap", "prepare", "inc")
            wait_until(lambda: node.ctl_json("fcmap", "show", "inc")["state"] == "prepared",
                       "inc prepared")
            r = node.ctl("fcmap", "start", "inc", "--wait")
        check("100%" in r.stdout, f"--wait did not follow the copy to 100%: {r.stdout!r}")
        check(node.ctl_json("fcmap", "show", "inc")["state"] == "idle_or_copied", "inc copied")

    before, _ = copies()
    refresh()
    first, kept0 = copies()
    check(first - before == grains, f"the first start copied {first - before} of {grains} grains")
    for grain in (0, 7, 40):
        h.pwrite(bytes([grain + 1]) * 512, grain * 256 * 1024 + 1024)
    refresh(prep=True)
    second, kept = copies()
    check(second - first == 3, f"the refresh copied {second - first} grains, not the 3 changed")
    print(f"incremental: first start copied {first - before} grains, the refresh {second - first}")
    check(kept - kept0 == grains - 3, f"kept {kept - kept0} of {grains - 3}")
    # The history survives the I/O process: once written whole (the tick
    # after the copy ended), two more grains change (each write waits for
    # its page), the process is SIGKILLed, and the refresh after its
    # restart copies those two only.
    stats = lambda: node.ctl_json("node", "stats")["flashcopy"]
    wait_until(lambda: stats()["history_writes"] >= 1, "the history written to the back end")
    for grain in (3, 50):
        h.pwrite(bytes([grain + 9]) * 512, grain * 256 * 1024)
    h.shutdown()
    os.kill(node.io_pid(), signal.SIGKILL)
    wait_until(lambda: node.ctl_json("daemon", "status")["restarts"] == 1 and
               node.ctl_json("daemon", "status")["io_serving"], "the I/O process back")
    h = connect(node.url("inc_s"))
    after_restart, _ = copies()
    refresh(prep=True)
    third, _ = copies()
    check(third - after_restart == 2,
          f"after a restart the refresh copied {third - after_restart} grains, not the 2 changed")
    check(stats()["history_loads"] >= 1, f"the history was not read back: {stats()}")
    t = connect(node.url("inc_t"))
    check(t.pread(VDISK, 0) == h.pread(VDISK, 0), "the target is not its source after the refresh")
    t.shutdown()
    # The process dies *during* a start: the grains written during it are
    # on the bitmap's second plane, so the history it leaves is whole. A
    # refresh at copy rate 0 with one grain to copy stays copying; two
    # source grains and a target grain are written; SIGKILL; the bitmap is
    # read back, the copy ends, and the refresh after copies those three.
    h.pwrite(b"\x71" * 512, 10 * 256 * 1024)
    node.ctl("fcmap", "set", "inc", "--copyrate", "0")
    node.ctl("fcmap", "start", "inc", "--prep")
    wait_until(lambda: node.ctl_json("fcmap", "show", "inc")["state"] == "copying", "inc copying")
    t = connect(node.url("inc_t"))
    h.pwrite(b"\x72" * 512, 20 * 256 * 1024)
    h.pwrite(b"\x73" * 512, 30 * 256 * 1024 + 4096)
    t.pwrite(b"\x74" * 4096, 45 * 256 * 1024)
    h.shutdown()
    t.shutdown()
    os.kill(node.io_pid(), signal.SIGKILL)
    wait_until(lambda: node.ctl_json("daemon", "status")["restarts"] == 2 and
               node.ctl_json("daemon", "status")["io_serving"], "the I/O process back again")
    wait_until(lambda: node.ctl_json("fcmap", "show", "inc").get("progress", {}).get("known"),
               "inc's bitmap read back")
    node.ctl("fcmap", "set", "inc", "--copyrate", "150")
    wait_until(lambda: node.ctl_json("fcmap", "show", "inc")["state"] == "idle_or_copied",
               "inc copied after the restart")
    h = connect(node.url("inc_s"))
    before_refresh, _ = copies()
    refresh(prep=True)
    fourth, _ = copies()
    check(fourth - before_refresh == 3,
          f"after a restart during a start the refresh copied {fourth - before_refresh} grains, "
          f"not the 3 written during it")
    t = connect(node.url("inc_t"))
    check(t.pread(VDISK, 0) == h.pread(VDISK, 0), "the target is not its source after the refresh")
    t.shutdown()
    h.shutdown()
    node.ctl("fcmap", "delete", "inc")
    return 0


if __name__ == "__main__":
    run(test)

"""The admin port treats its input as hostile: thousands of malformed,
wrong-typed and out-of-range requests (the bare {"cmd": 5} first) each get
a one-line error, neither process restarts, and the node still serves;
connections beyond the limit are refused with a clear line, and the node
answers once they go; the chaos monkey is refused without --enable-chaos.

SVE_TEST_SEED replays the random part."""
import json
import os
import random
import socket

from harness import Sved, check, qemu_io, run, wait_until

MiB = 1 << 20

# Every command the port accepts, with a valid value for each field (the
# mutations below replace one at a time).
COMMANDS = {
    "mdisk.add": {"name": "m9", "path": "/nonexistent"},
    "mdisk.remove": {"name": "m9"},
    "pool.create": {"name": "p9", "mdisks": ["m9"], "extent_size": "16M"},
    "pool.delete": {"name": "p9"},
    "pool.addmdisk": {"name": "p9", "mdisks": ["m9"]},
    "vdisk.create": {"name": "v9", "pool": "p9", "size": "1M", "policy": "striped",
                     "iogrp": "g", "node": 1, "thin": True, "grain": "64K", "rsize": "1M",
                     "rsize_pct": 10, "warning": 50, "autoexpand": False},
    "vdisk.show": {"name": "v9"},
    "vdisk.expand": {"name": "v9", "size": 4096},
    "vdisk.delete": {"name": "v9"},
    "vdisk.set": {"name": "v9", "read_only": True, "warning": 90, "autoexpand": True},
    "vdisk.check": {"name": "v9"},
    "pool.check": {"name": "p9"},
    "vdisk.move": {"name": "v9", "iogrp": "g", "node": 2},
    "vdisk.clear-reservations": {"name": "v9"},
    "iogrp.create": {"name": "g", "nodes": [1, 2]},
    "iogrp.delete": {"name": "g"},
    "fcmap.create": {"name": "f9", "source": "v9", "target": "v8", "copy_rate": 50,
                     "clean_rate": 70, "grain": "64K", "autodelete": True, "incremental": True,
                     "consistgrp": "cg9"},
    "fcmap.show": {"name": "f9"},
    "fcmap.prepare": {"name": "f9"},
    "fcmap.start": {"name": "f9"},
    "fcmap.stop": {"name": "f9", "force": True},
    "fcmap.set": {"name": "f9", "copy_rate": 0, "clean_rate": 0, "autodelete": False,
                  "consistgrp": "cg9",
                  "no_consistgrp": True},
    "fcconsistgrp.create": {"name": "cg9"},
    "fcconsistgrp.show": {"name": "cg9"},
    "fcconsistgrp.prepare": {"name": "cg9"},
    "fcconsistgrp.start": {"name": "cg9"},
    "fcconsistgrp.stop": {"name": "cg9", "force": True},
    "fcconsistgrp.delete": {"name": "cg9", "force": True},
    "fcmap.delete": {"name": "f9", "force": True},
    "cluster.create": {"name": "c"},
    "node.add": {"id": 2, "address": "127.0.0.1:1", "node_admin": "127.0.0.1:1"},
    "cluster.join_key": {"key": "00" * 32},
    "audit.list": {"since": 5, "count": 5},  # (5 is the one valid wrong value)
    "node.remove": {"id": 2},
    "chaos.start": {"seed": 1, "faults": "all", "rate": 6},
    "chaos.inject": {"kind": "mdisk-stall", "duration_ms": 10, "target": 0},
    "chaos.stop": {"log": 5},
    "shell.inspect": {"name": "no-such-actor"},
    "shell.trace": {"name": "no-such-actor", "count": 3},
    "vdisk.list": {}, "pool.list": {}, "mdisk.list": {}, "node.stats": {}, "node.show": {},
    "cluster.status": {}, "node.list": {}, "iogrp.list": {}, "shell.actors": {}, "fcmap.list": {},
    "fcconsistgrp.list": {}, "host.list": {},
    # h9 exists with these ways to be known: a new host with any of them fails.
    "host.create": {"name": "h9", "nbd_identity": "id9", "addresses": ["127.0.0.1"],
                    "iqn": "iqn.2026-12.org.sve:h9"},
    "host.show": {"name": "h8"},
    "host.set": {"name": "h8", "nbd_identity": "id8", "addresses": ["10.0.0.8/24"],
                 "iqn": "iqn.2026-12.org.sve:h8"},
    "host.chap": {"name": "h8", "secret": "a-secret-of-16ch"},
    "host.delete": {"name": "h8", "force": True},
    "vdisk.map": {"name": "v9", "host": "h8", "lun": 3, "read_only": True, "force": True},
    "vdisk.unmap": {"name": "v9", "host": "h8"},
    # No users exist: the first must be a securityadmin; u9 is nobody.
    "user.create": {"name": "u9", "role": "monitor", "password": "a-password-9"},
    "user.delete": {"name": "u9"},
    "user.passwd": {"name": "u9", "password": "a-password-9"},
    "user.list": {}, "user.whoami": {}, "session.login": {},
}

# Commands whose every field may be left out (the request stays valid).
ALL_OPTIONAL = {"fcconsistgrp.create", "audit.list"}

WRONG_VALUES = [5, -1, 1.5, 2 ** 64, -2 ** 63, True, None, [], [1, "a"], {}, {"a": 1}, "",
                "x" * 300, "../../etc", "é" * 40, "12Q", [[[]]], "\u0000", 1e308]


def malformed(rng):
    """One line that must be refused."""
    kind = rng.randrange(8)
    if kind == 0:  # not an object, or no usable cmd
        return json.dumps(rng.choice([{"cmd": 5}, {"cmd": None}, {"cmd": []}, {"cmd": {}},
                                      {}, [], "vdisk.list", 7, None, {"cmd": "nope"},
                                      {"cmd": "iogrp.cache_state", "id": 1},
                                      {"cmd": "vdisk.handover_done", "id": 1, "from": 1}]))
    if kind == 1:  # not JSON at all
        return rng.choice(['{"cmd":', "{{", "\x00\x01\x02", '{"cmd": "vdisk.list"',
                           "[" * 5000, '{"cmd": "vdisk.list"} trailing', "\xff\xfe"])
    cmd = rng.choice([c for c, f in COMMANDS.items() if f])
    req = {"cmd": cmd, **COMMANDS[cmd]}
    if kind == 2:  # an unknown field
        req[rng.choice(["nmae", "size2", "", "cmd2", "é"])] = 1
        return json.dumps(req)
    if kind == 4:  # credentials or an origin of the wrong shape
        key = rng.choice(["auth", "from"])
        req[key] = rng.choice([v for v in WRONG_VALUES if key == "auth" or not isinstance(v, str)]
                              + [{"token": ""}, {"user": "a"}, {"user": "a", "password": 5},
                                 {"token": "t", "user": "a"}, {"user": "../x", "password": "p"}])
        return json.dumps(req)
    # A known field with a value of the wrong type or range.
    field = rng.choice(list(COMMANDS[cmd]))
    wrong = [v for v in WRONG_VALUES if v != COMMANDS[cmd][field]]
    if cmd in ALL_OPTIONAL:  # nothing else fails it: only values no name may take
        wrong = [v for v in wrong if not isinstance(v, str) or v in ("", "x" * 300, "\u0000")]
    req[field] = rng.choice(wrong)
    if kind == 3 and cmd not in ALL_OPTIONAL:  # or a required field left out
        req.pop(field)
    return json.dumps(req)


def ask_lines(port, lines):
    """Sends each line over one connection; returns the replies, one a line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rwb")
        replies = []
        for line in lines:
            f.write(line.encode("utf-8", "surrogateescape") + b"\n")
            f.flush()
            replies.append(f.readline())
        return replies


def test(make):
    seed = int(os.environ.get("SVE_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (SVE_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    node = make().start()
    node.ctl("mdisk", "add", "m0", "memory:64M")
    node.ctl("pool", "create", "p0", "--extent-size", "16M", "m0")
    node.ctl("vdisk", "create", "v0", "--pool", "p0", "--size", "32M")
    qemu_io(node.url("v0"), "write -P 0x5a 0 1M")
    # A host with the ways COMMANDS' host.create names, and v0 mapped to it
    # (qemu-io connects from 127.0.0.1, its address).
    node.ctl("host", "create", "h9", "--nbd-identity", "id9", "--address", "127.0.0.1",
             "--iqn", "iqn.2026-12.org.sve:h9")
    node.ctl("vdisk", "map", "v0", "h9")
    hosts_before = node.ctl_json("host", "list")
    before = node.ctl_json("daemon", "status")
    port = node.admin_port

    # The one that took the configuration process down.
    reply = json.loads(ask_lines(port, ['{"cmd": 5}'])[0])
    check(reply == {"ok": False, "error": "field 'cmd': expected a command name"},
          f"bare cmd 5: {reply}")

    lines = [malformed(rng) for _ in range(3000)]
    for at in range(0, len(lines), 250):
        batch = lines[at:at + 250]
        for line, raw in zip(batch, ask_lines(port, batch)):
            check(raw.endswith(b"\n"), f"no reply line to {line[:120]!r}")
            reply = json.loads(raw)
            check(reply.get("ok") is False and isinstance(reply.get("error"), str)
                  and "\n" not in reply["error"] and reply["error"],
                  f"{line[:200]!r} got {reply}")
            check("internal error" not in reply["error"],
                  f"{line[:200]!r} reached a handler: {reply}")

    # A line over the limit closes that connection only.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"x" * (1 << 20) + b"y" * 70000)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        check(b"longer than" in got, f"oversized request: {got[:200]!r}")

    after = node.ctl_json("daemon", "status")
    check(after["restarts"] == before["restarts"] == 0 and after["io_pid"] == before["io_pid"]
          and node.proc.poll() is None, f"a process restarted: {before} -> {after}")
    check([v["name"] for v in node.ctl_json("vdisk", "list")] == ["v0"], "the model changed")
    check(node.ctl_json("host", "list") == hosts_before, "the hosts changed")
    qemu_io(node.url("v0"), "read -P 0x5a 0 1M", "write -P 0x5b 1M 1M", "read -P 0x5b 1M 1M")

    # svectl itself: an argument that is not UTF-8 is one error line.
    node.ctl_fails("vdisk", "show", os.fsdecode(b"bad\xff"), contains="UTF-8")

    # The chaos monkey answers only where sved was started with --enable-chaos.
    node.ctl_fails("chaos", "start", "--seed", "3", contains="--enable-chaos")
    node.ctl_fails("chaos", "inject", "mdisk-fail", contains="--enable-chaos")

    # A flood of connections: those beyond the limit are refused with a
    # line; the node answers again once they are gone.
    held = []
    try:
        for _ in range(64):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # The server registers them as it accepts: wait until the 65th is refused.
        def refused():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b'{"cmd": "vdisk.list"}\n')
                line = s.makefile("rb").readline()
                return b"too many admin connections" in line
        wait_until(refused, "a connection beyond the limit to be refused")
        r = node.ctl("vdisk", "list", ok=False)
        check(r.returncode != 0 and "too many admin connections" in r.stderr,
              f"svectl during the flood: {r.stderr!r}")
    finally:
        for s in held:
            s.close()
    wait_until(lambda: node.ctl("vdisk", "list", ok=False).returncode == 0,
               "the admin port to answer after the flood")
    after = node.ctl_json("daemon", "status")
    check(after["restarts"] == 0 and after["io_pid"] == before["io_pid"],
          f"the flood restarted a process: {after}")


if __name__ == "__main__":
    run(test)

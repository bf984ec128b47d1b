"""Thin-provisioned vdisks with real clients (python3-libnbd, qemu-io):
over-allocation, zeros without I/O, used capacity, whole-grain trims given
back, out of space with ENOSPC and everything written before still there,
growth resuming after `pool addmdisk`, and SIGKILL of the I/O process under
concurrent first writes followed by `vdisk check`, repeated."""
import json
import os
import random
import signal
import subprocess
import threading

from harness import check, io_restarted, qemu_io, run, wait_until
from libnbd_client import connect, nbd

MiB = 1 << 20
GRAIN = 64 * 1024


def block(tag, offset, length=4096):
    """A block that says what it is and where it belongs."""
    head = f"{tag}:{offset}:".encode()
    return (head * (length // len(head) + 1))[:length]


def used(node, name):
    show = node.ctl_json("vdisk", "show", name)
    return show["thin_usage"]["used_capacity"] if show.get("thin_usage") else None


def vdisk_check(node, name):
    result = node.ctl_json("vdisk", "check", name)
    check(result["checked"] and result["clean"], f"vdisk check {name}: {result}")
    return result


def holes(node):
    """A 4 GiB thin vdisk holding 16 MiB: the tools see exactly the written
    ranges, and copying it reads about 16 MiB."""
    node.ctl("vdisk", "create", "m", "--pool", "p", "--size", "4G", "--thin", "--rsize", "4M")
    murl = node.url("m")
    written = [(0, 4 * MiB), (1024 * MiB, 4 * MiB), (2500 * MiB, 4 * MiB), (4092 * MiB, 4 * MiB)]
    qemu_io(murl, *[f"write -P 0x{i + 1:02x} {o} {n}" for i, (o, n) in enumerate(written)])
    r = subprocess.run(["nbdinfo", "--map", "--json", murl], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"nbdinfo --map: {r.stderr}")
    data = [(m["offset"], m["length"]) for m in json.loads(r.stdout) if m["type"] == 0]
    check(data == written, f"nbdinfo --map data extents: {data}")
    r = subprocess.run(["qemu-img", "map", "--output=json", "-f", "raw", murl],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"qemu-img map: {r.stderr}")
    data = [(m["start"], m["length"]) for m in json.loads(r.stdout) if m["data"]]
    check(data == written, f"qemu-img map data extents: {data}")

    # libnbd: block status with and without REQ_ONE, in the middle of a hole
    # and across the end of written data.
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(murl)
    seen = []

    def collect(context, at, entries, err):
        seen.append((at, list(entries)))
        return 0

    h.block_status(8 * MiB, 2 * MiB, collect)
    check(seen == [(2 * MiB, [2 * MiB, 0, 6 * MiB, 3])], f"block status: {seen}")
    seen.clear()
    h.block_status(8 * MiB, 2 * MiB, collect, nbd.CMD_FLAG_REQ_ONE)
    check(seen == [(2 * MiB, [2 * MiB, 0])], f"block status with REQ_ONE: {seen}")
    seen.clear()
    h.block_status(MiB, 100 * MiB, collect)
    check(seen == [(100 * MiB, [MiB, 3])], f"block status of a hole: {seen}")

    # Structured reads: holes as OFFSET_HOLE chunks, data as data; with DF
    # one data chunk, zeros and all.
    chunks = []

    def chunk(sub, at, status, err):
        chunks.append((at, status, bytes(sub)))
        return 0

    got = h.pread_structured(2 * MiB, 1023 * MiB, chunk)
    want = bytes(MiB) + bytes([2]) * MiB
    check(got == want, "a structured read across a hole's end")
    check(sorted((c[0], c[1], len(c[2])) for c in chunks) ==
          [(1023 * MiB, nbd.READ_HOLE, MiB), (1024 * MiB, nbd.READ_DATA, MiB)],
          f"read chunks: {[(c[0], c[1], len(c[2])) for c in chunks]}")
    chunks.clear()
    got = h.pread_structured(2 * MiB, 1023 * MiB, chunk, nbd.CMD_FLAG_DF)
    check(got == want and [(c[0], c[1]) for c in chunks] == [(1023 * MiB, nbd.READ_DATA)],
          f"a DF read is one data chunk: {[(c[0], c[1], len(c[2])) for c in chunks]}")
    h.shutdown()

    def bytes_read():
        return node.ctl_json("vdisk", "show", "m")["cache"]["bytes_read"]

    out = os.path.join(node.data_dir, "copy.img")
    before = bytes_read()
    r = subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", "-S", "64k", murl, out],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"qemu-img convert: {r.stderr}")
    moved = bytes_read() - before
    check(16 * MiB <= moved <= 20 * MiB, f"qemu-img convert read {moved} bytes for 16 MiB")
    check(os.stat(out).st_blocks * 512 <= 20 * MiB, "the copy is not sparse")
    with open(out, "rb") as f:
        for i, (o, n) in enumerate(written):
            f.seek(o)
            check(f.read(n) == bytes([i + 1]) * n, f"the copy at {o}")
    os.remove(out)
    before = bytes_read()
    r = subprocess.run(["nbdcopy", murl, "null:"], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"nbdcopy: {r.stderr}")
    moved = bytes_read() - before
    check(16 * MiB <= moved <= 20 * MiB, f"nbdcopy read {moved} bytes for 16 MiB")
    node.ctl("vdisk", "delete", "m")


def test(make):
    node = make(cores=2).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 40 * MiB))
    node.ctl("pool", "create", "p", "--extent-size", "1M", "m0")
    # Over-allocation is what thin is for; a fully allocated vdisk that size
    # is refused.
    node.ctl_fails("vdisk", "create", "big", "--pool", "p", "--size", "1G", contains="cannot hold")
    t = node.ctl_json("vdisk", "create", "t", "--pool", "p", "--size", "1G", "--thin",
                      "--grain", "64K", "--rsize", "2M", "--warning", "3%")
    check(t["thin"] and t["grain_size"] == GRAIN and t["virtual_capacity"] == 1 << 30
          and t["real_capacity"] == 2 * MiB and t["autoexpand"], f"vdisk create: {t}")
    # Refused, with one line each: a bad grain, rsize on a thick vdisk.
    node.ctl_fails("vdisk", "create", "x", "--pool", "p", "--size", "1G", "--thin", "--grain", "48K",
                   contains="grain")
    node.ctl_fails("vdisk", "create", "x", "--pool", "p", "--size", "1M", "--rsize", "10%",
                   contains="thin")
    node.ctl_fails("vdisk", "expand", "t", "--size", "2G", contains="thin")
    pool = node.ctl_json("pool", "list")[0]
    check(pool["virtual_capacity"] == 1 << 30 and pool["overallocation"] > 2000,
          f"pool list: {pool}")
    daemon = node.ctl_json("daemon", "status")
    holes(node)
    url = node.url("t")

    # Never written: zeros, and nothing read below (the map is in memory).
    h = connect(url)
    check(h.pread(MiB, 100 * MiB) == bytes(MiB), "a never-written range reads zeros")
    check(used(node, "t") == 0, "used capacity of a new thin vdisk")
    # First writes here and there: grains allocated, their rest zeros.
    spots = [0, 5 * MiB + 4096, 300 * MiB, 1023 * MiB]
    for s in spots:
        h.pwrite(block("a", s), s)
    for s in spots:
        check(h.pread(4096, s) == block("a", s), f"read back at {s}")
        g = s - s % GRAIN
        around = h.pread(GRAIN, g)
        check(around[:s - g] == bytes(s - g) and around[s - g + 4096:] == bytes(GRAIN - (s - g) - 4096),
              f"the rest of the grain at {g} reads zeros")
    check(used(node, "t") == len(spots) * GRAIN, f"used capacity {used(node, 't')}")
    # A trim of part of a grain keeps it; of the whole grain gives it back.
    h.trim(4096, 300 * MiB)
    check(used(node, "t") == len(spots) * GRAIN, "a partial trim freed a grain")
    h.trim(GRAIN, 300 * MiB)
    check(used(node, "t") == (len(spots) - 1) * GRAIN, "a whole-grain trim did not free it")
    check(h.pread(GRAIN, 300 * MiB) == bytes(GRAIN), "a trimmed grain reads zeros")
    # qemu-io's own pattern check over a thin vdisk.
    qemu_io(url, "write -P 0x3c 600M 1M", "read -P 0x3c 600M 1M", "read -P 0 601M 1M")
    vdisk_check(node, "t")

    # Out of space: the pool (40 MiB) fills; every acknowledged write reads
    # back; ENOSPC, and the connection stays.
    written = {}
    offset = 2 * MiB
    nospace = 0
    while nospace < 3:
        data = block("f", offset, 256 * 1024)
        try:
            h.pwrite(data, offset)
            written[offset] = data
        except nbd.Error as e:
            check(e.errno == "ENOSPC", f"a write to a full pool: {e}")
            nospace += 1
        offset += 512 * 1024
        check(offset < 900 * MiB, "the pool never filled")
    check(len(written) * 256 * 1024 > 30 * MiB, f"only {len(written)} writes fit")
    for off, data in written.items():
        check(h.pread(len(data), off) == data, f"acknowledged write at {off} after ENOSPC")
    h.pwrite(block("again", 0), 0)  # an allocated grain still takes writes
    check(h.pread(4096, 0) == block("again", 0), "a write to an allocated grain when full")
    show = node.ctl_json("vdisk", "show", "t")
    check(show["thin_usage"]["out_of_space"] and show["thin_usage"]["warning_crossed"],
          f"vdisk show when full: {show['thin_usage']}")
    log = node.read_log()
    check(log.count("event: thin vdisk t has used") == 1, "not one warning event for vdisk t")
    check("event: pool p is" in log, "no warning event for the pool")
    # More capacity: growth resumes without a restart.
    node.ctl("mdisk", "add", "m1", node.make_file("m1.img", 24 * MiB))
    node.ctl("pool", "addmdisk", "p", "m1")
    h.pwrite(block("after", offset), offset)
    check(h.pread(4096, offset) == block("after", offset), "a first write after pool addmdisk")
    written[offset] = block("after", offset)
    vdisk_check(node, "t")
    check(node.ctl_json("pool", "check", "p")["clean"], "pool check")
    h.shutdown()

    # SIGKILL of the I/O process under concurrent first writes, three times:
    # every acknowledged write reads back, and the map is clean.
    node.ctl("mdisk", "add", "m2", node.make_file("m2.img", 96 * MiB))
    node.ctl("pool", "addmdisk", "p", "m2")
    node.ctl("vdisk", "create", "k", "--pool", "p", "--size", "256M", "--thin", "--grain", "32K")
    kurl = node.url("k")
    acked = {}
    # A write cut off by the kill may or may not have landed: where one was,
    # either its data or the last acknowledged one may read back.
    unsure = {}
    lock = threading.Lock()
    rng = random.Random(7)
    for round_ in range(3):
        stop = threading.Event()

        def writer(seed, lane):
            r = random.Random(seed)
            try:
                c = connect(kurl)
            except nbd.Error:
                return
            while not stop.is_set():
                # Each writer its own blocks: no two overlap in flight.
                off = (r.randrange(0, 256 * MiB // 4096 // 4) * 4 + lane) * 4096
                data = block(f"k{round_}-{seed}", off)
                try:
                    c.pwrite(data, off)
                except nbd.Error:
                    with lock:
                        unsure.setdefault(off, []).append(data)
                    return  # the process died: this write was not acknowledged
                with lock:
                    acked[off] = data
                    unsure.pop(off, None)

        threads = [threading.Thread(target=writer, args=(rng.random(), lane)) for lane in range(4)]
        for th in threads:
            th.start()
        wait_until(lambda: len(acked) > 300 * (round_ + 1), "writes before the kill", timeout=60)
        os.kill(node.ctl_json("daemon", "status")["io_pid"], signal.SIGKILL)
        stop.set()
        for th in threads:
            th.join(timeout=30)
        io_restarted(node, round_ + 1)
        c = connect(kurl)
        for off, data in acked.items():
            got = c.pread(4096, off)
            check(got == data or got in unsure.get(off, []),
                  f"round {round_}: acknowledged write at {off} lost")
        c.shutdown()
        result = vdisk_check(node, "k")
        check(result["mapped_grains"] >= len({o // (32 * 1024) for o in acked}),
              f"fewer grains mapped than written: {result}")
    # The first vdisk came through the restarts too.
    c = connect(url)
    for off, data in written.items():
        check(c.pread(len(data), off) == data, f"thin vdisk t after restarts at {off}")
    c.shutdown()
    after = node.ctl_json("daemon", "status")
    check(after["restarts"] == daemon["restarts"] + 3, f"unexpected restarts: {daemon} -> {after}")
    return 0


if __name__ == "__main__":
    run(test)

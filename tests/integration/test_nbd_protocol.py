"""The NBD protocol as libnbd (python3-libnbd) and qemu use it: structured
replies, the base:allocation metadata context and NBD_CMD_BLOCK_STATUS
(with REQ_ONE), the DF flag, NBD_CMD_CACHE (the range ends up in the cache),
FAST_ZERO, NBD_INFO_NAME and DESCRIPTION; and `nbdinfo --map` and
`qemu-img map` over it. A vdisk here is fully allocated: every range is
data (thin provisioning reports holes)."""
import json
import os
import subprocess
import sys

from harness import check, qemu_io, run

MiB = 1 << 20

try:
    import nbd  # Debian's python3-libnbd, for /usr/bin/python3
except ImportError:
    print("python3-libnbd is missing (scripts/install-deps.sh installs it)", file=sys.stderr)
    sys.exit(1)


def connect(url, context=True):
    h = nbd.NBD()
    if context:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.set_full_info(True)
    h.connect_uri(url)
    return h


def extents_of(h, length, offset, flags=0):
    found = []

    def collect(context, at, entries, err):
        check(context == nbd.CONTEXT_BASE_ALLOCATION, f"context {context}")
        found.append((at, list(entries)))
        return 0

    h.block_status(length, offset, collect, flags)
    return found


def test(make):
    node = make(cores=1).start()
    node.ctl("mdisk", "add", "m0", node.make_file("m0.img", 80 * MiB))
    node.ctl("pool", "create", "p0", "--extent-size", "1M", "m0")
    node.ctl("vdisk", "create", "v", "--pool", "p0", "--size", "64M")
    url = node.url("v")
    daemon = node.ctl_json("daemon", "status")

    h = connect(url)
    check(h.get_structured_replies_negotiated(), "structured replies not negotiated")
    check(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "no base:allocation")
    check(h.can_df() and h.can_cache() and h.can_fast_zero() and h.can_multi_conn(),
          "DF, CACHE, FAST_ZERO or multi-conn not offered")
    check(h.get_canonical_export_name() == "v", "NBD_INFO_NAME")
    check("v" in h.get_export_description(), "NBD_INFO_DESCRIPTION")
    check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB, "maximum block size")

    # Structured reads, with and without DF: the data as written.
    data = os.urandom(3 * MiB)
    h.pwrite(data, 5 * MiB)
    check(h.pread(len(data), 5 * MiB) == data, "structured read differs")
    chunks = []

    def chunk(sub, at, status, err):
        chunks.append((at, status, bytes(sub)))
        return 0

    got = h.pread_structured(len(data), 5 * MiB, chunk, nbd.CMD_FLAG_DF)
    check(got == data and [(c[0], c[1]) for c in chunks] == [(5 * MiB, nbd.READ_DATA)],
          f"a DF read is one data chunk: {[(c[0], c[1], len(c[2])) for c in chunks]}")
    # libnbd checks requests before it sends them; from here on the server
    # is the one to say no.
    h.set_strict_mode(0)
    check(h.pread(0, 0) == b"", "a read of nothing")
    # A read past the end fails (an error chunk) and the connection goes on.
    try:
        h.pread(8192, 64 * MiB - 4096)
        check(False, "read past the end succeeded")
    except nbd.Error as e:
        check(e.errno == "EINVAL", f"read past the end: {e}")
    check(h.pread(4096, 5 * MiB) == data[:4096], "connection after an error chunk")

    # Block status: all data, one extent for the range asked (REQ_ONE too).
    for flags in (0, nbd.CMD_FLAG_REQ_ONE):
        got = extents_of(h, 8 * MiB, 3 * MiB, flags)
        check(got == [(3 * MiB, [8 * MiB, 0])], f"block status (flags {flags}): {got}")
    got = extents_of(h, 64 * MiB, 0)
    check(got == [(0, [64 * MiB, 0])], f"block status of the whole vdisk: {got}")
    try:
        extents_of(h, 8192, 64 * MiB - 4096)
        check(False, "block status past the end succeeded")
    except nbd.Error as e:
        check(e.errno == "EINVAL", f"block status past the end: {e}")

    # CACHE brings the range into the cache: the read after it is a hit.
    before = node.ctl_json("vdisk", "show", "v")["cache"]
    h.cache(64 * 1024, 20 * MiB)
    check(h.pread(64 * 1024, 20 * MiB) == bytes(64 * 1024), "read after CACHE")
    after = node.ctl_json("vdisk", "show", "v")["cache"]
    check(after["bytes_hit"] - before["bytes_hit"] == 64 * 1024,
          f"CACHE did not fill the cache: {before} -> {after}")
    h.cache(48 * MiB, 0)  # over the maximum: advice, cut to it rather than refused

    # FAST_ZERO on a file mdisk: zeroed by fallocate, so it is fast.
    h.zero(MiB, 5 * MiB, nbd.CMD_FLAG_FAST_ZERO)
    check(h.pread(MiB, 5 * MiB) == bytes(MiB), "fast zero did not zero")
    check(h.pread(MiB, 6 * MiB) == data[MiB:2 * MiB], "fast zero went past its range")
    h.flush()
    h.shutdown()
    qemu_io(url, f"write -z -n {MiB} 64k", f"read -P 0 {MiB} 64k")  # qemu's no-fallback zeroing

    # Without a context, block status is refused (libnbd would not send it;
    # the raw request is in test_bad_inputs).
    plain = connect(url, context=False)
    check(not plain.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "context without asking")
    check(plain.pread(4096, 6 * MiB) == data[MiB:MiB + 4096], "read without a context")
    plain.shutdown()

    # A read-only vdisk: new connections see the flag; writes fail with
    # EPERM on every connection, old ones included; reads go on.
    old = connect(url)
    node.ctl_fails("vdisk", "set", "v", contains="say what to set")  # no flag
    check(node.ctl_json("vdisk", "set", "v", "--read-only")["read_only"], "vdisk set --read-only")
    check(node.ctl_json("vdisk", "show", "v")["read_only"], "vdisk show: read_only")
    ro = connect(url)
    check(ro.is_read_only() and not old.is_read_only(), "the read-only flag")
    old.set_strict_mode(0)
    for h2, what in ((old, "connection from before"), (ro, "new connection")):
        for op in (lambda: h2.pwrite(b"\x01" * 4096, 0), lambda: h2.zero(4096, 0),
                   lambda: h2.trim(4096, 0)):
            try:
                op()
                check(False, f"a change to a read-only vdisk succeeded ({what})")
            except nbd.Error as e:
                check(e.errno == "EPERM", f"read-only ({what}): {e}")
    check(old.pread(4096, 6 * MiB) == data[MiB:MiB + 4096], "read of a read-only vdisk")
    ro.shutdown()
    check(not node.ctl_json("vdisk", "set", "v", "--read-write")["read_only"], "--read-write")
    old.pwrite(b"\x02" * 4096, 0)
    check(old.pread(4096, 0) == b"\x02" * 4096, "a write after --read-write")
    old.shutdown()

    # The tools over it: one data extent for the whole vdisk.
    r = subprocess.run(["nbdinfo", "--map", "--json", url], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"nbdinfo --map: {r.stderr}")
    mapped = json.loads(r.stdout)
    check([(m["offset"], m["length"], m["type"]) for m in mapped] == [(0, 64 * MiB, 0)],
          f"nbdinfo --map: {mapped}")
    r = subprocess.run(["qemu-img", "map", "--output=json", "-f", "raw", url],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"qemu-img map: {r.stderr}")
    mapped = json.loads(r.stdout)
    check(len(mapped) == 1 and mapped[0]["length"] == 64 * MiB and mapped[0]["data"],
          f"qemu-img map: {mapped}")
    # Every refusal above was an answer: neither process restarted.
    after = node.ctl_json("daemon", "status")
    check(after["restarts"] == daemon["restarts"] == 0 and after["io_pid"] == daemon["io_pid"],
          f"a process restarted: {daemon} -> {after}")
    return 0


if __name__ == "__main__":
    run(test)

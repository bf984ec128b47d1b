"""A host with dependent writes, for consistency groups (python3-libnbd):
record k+1 is sent only once record k was acknowledged, the records spread
over several vdisks; on point-in-time copies of them taken at one instant,
every record present implies all earlier ones."""
import struct
import threading

from harness import check, wait_until
from libnbd_client import connect

SLOT = 4096


class Chain:
    """Record k goes to vdisk k % n (of `urls`, one NBD URL each), slot
    k // n, holding k + 1 (so zeros are none)."""

    def __init__(self, urls, vdisk_bytes):
        self.handles = [connect(u) for u in urls]
        self.slots = vdisk_bytes // SLOT
        self.next = 0
        self.stop = threading.Event()
        self.thread = None

    def record(self, k):
        n = len(self.handles)
        return k % n, (k // n) * SLOT, struct.pack("<Q", k + 1) * (SLOT // 8)

    def _run(self):
        while not self.stop.is_set() and self.next < len(self.handles) * self.slots:
            i, offset, data = self.record(self.next)
            self.handles[i].pwrite(data, offset)
            self.next += 1

    def start(self):
        self.stop.clear()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def wait_for(self, count, timeout=10):
        wait_until(lambda: self.next >= count or not self.thread.is_alive(),
                   f"{count} records written", timeout=timeout)

    def halt(self):
        self.stop.set()
        self.thread.join()

    def close(self):
        for h in self.handles:
            h.shutdown()


def records_on(urls, vdisk_bytes):
    """The records the copies hold (one URL per vdisk of the chain, in its
    order): a set of k."""
    present = set()
    n = len(urls)
    for i, url in enumerate(urls):
        h = connect(url)
        chunk = 4 << 20
        data = b"".join(h.pread(min(chunk, vdisk_bytes - at), at)
                        for at in range(0, vdisk_bytes, chunk))
        h.shutdown()
        for slot in range(vdisk_bytes // SLOT):
            (value,) = struct.unpack_from("<Q", data, slot * SLOT)
            if value:
                k = value - 1
                check(k % n == i and k // n == slot, f"record {k} in the wrong place on {url}")
                present.add(k)
    return present


def holes_below_top(present):
    """Records missing below the highest present: a dependent write seen
    without the one it depended on."""
    if not present:
        return []
    top = max(present)
    return [k for k in range(top) if k not in present]


def check_point_in_time(urls, vdisk_bytes, at_start, at_least, what):
    """The copies at `urls` hold a consistent set: every record present
    implies all earlier ones; at least `at_least` of them, and none written
    after `at_start` (the chain's count once the copies were seen started)."""
    present = records_on(urls, vdisk_bytes)
    holes = holes_below_top(present)
    check(not holes, f"{what}: the targets hold record {max(present)} but not {holes[:5]} "
                     f"it depended on")
    check(len(present) >= at_least and max(present) < at_start,
          f"{what}: {len(present)} records on the targets, {at_start} at the start")
    print(f"{what}: {len(present)} records on the targets, {at_start} written when the "
          f"group was seen copying")

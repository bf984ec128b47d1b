#!/usr/bin/python3
"""4 KiB random reads and writes (50/50) over many NBD connections, with
libnbd's asynchronous calls from one event loop: for URIs fio's nbd engine
refuses (a TLS key file in the URI). Prints one JSON line: ops/s.

    bench/nbd_load.py URI CONNECTIONS DEPTH SECONDS SIZE_BYTES
"""
import json
import random
import select
import sys
import time

import nbd

uri, conns, depth, seconds, size = sys.argv[1], *map(int, sys.argv[2:6])
handles = []
for _ in range(conns):
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)
    h.connect_uri(uri)
    handles.append(h)
rng = random.Random(1)
blocks = size // 4096
done = 0
ready = []  # handles with a free slot


def issue(h):
    buf = nbd.Buffer(4096)

    def completed(error, h=h, buf=buf):
        global done
        done += 1
        ready.append(h)
        return 1  # retired

    off = rng.randrange(blocks) * 4096
    if rng.random() < 0.5:
        h.aio_pread(buf, off, completion=completed)
    else:
        h.aio_pwrite(buf, off, completion=completed)


for h in handles:
    for _ in range(depth):
        issue(h)
by_fd = {h.aio_get_fd(): h for h in handles}
poller = select.poll()
start = time.monotonic()
end = start + seconds
counted_from, base = start, 0
while True:
    now = time.monotonic()
    if now >= end:
        break
    while ready:
        issue(ready.pop())
    for fd, h in by_fd.items():
        d = h.aio_get_direction()
        mask = (select.POLLIN if d & nbd.AIO_DIRECTION_READ else 0) | \
               (select.POLLOUT if d & nbd.AIO_DIRECTION_WRITE else 0)
        poller.register(fd, mask)
    for fd, ev in poller.poll(100):
        h = by_fd[fd]
        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            h.aio_notify_read()
        if ev & select.POLLOUT:
            h.aio_notify_write()
print(json.dumps({"ops_per_s": done / (time.monotonic() - start), "ops": done}))

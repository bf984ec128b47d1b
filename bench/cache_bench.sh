#!/usr/bin/env bash
# The fast-write cache, measured with fio (nbd engine, 4 KiB, QD32, one job)
# on one file back end (O_DIRECT), in one run:
#   - a two-node I/O group (a two-node cluster with a quorum file), fio on
#     the owner: random writes mirrored in write-back mode; the same once the
#     partner is stopped and the owner writes through; random reads of a
#     range read once before (cache hits); the writes and reads again sent
#     to the partner node, which forwards them to the owner
#   - qemu-nbd on a file of the same size: random writes with the page cache
#     bypassed (--cache=none), and random reads of a range read once before
#     from the page cache (--cache=writeback)
# The working set (WORKING_MIB) fits in each node's cache (CACHE_MIB).
#
#   bench/cache_bench.sh [RUNTIME_S] [WORKING_MIB] [CACHE_MIB]
#   BACKEND_IOPS=5000 bench/cache_bench.sh ...
#   SVE_BASELINE=DIR bench/cache_bench.sh ...   # also the sved jobs of another
#                                               # build (say of the previous commit)
# The sved jobs run three times: copies and forwarded requests on the data
# channel (the default), then through the interconnect actor
# (--data-channel off), then with reactors that poll (--poll-us 100).
#
# With BACKEND_IOPS, each back end (sved's and qemu-nbd's) is a loop device
# over its file, limited to that many reads and as many writes a second by
# the blkio cgroup the servers run in (cgroup v1 blkio.throttle, as root):
# a back end as slow as a disk array, rather than this VM's virtual disk,
# which is about as fast as loopback NBD itself.
#
# Needs a built tree (scripts/build.sh), fio and qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-10}
WORKING_MIB=${2:-256}
CACHE_MIB=${3:-1024}
SIZE_MIB=1024
WORK=$(mktemp -d /tmp/sve-cache-bench-XXXXXX)
NBD1=21809 ADMIN1=21810 CLUSTER1=21811
NBD2=21819 ADMIN2=21820 CLUSTER2=21821
QPORT=21830

source bench/common.sh

run_fio() {  # label uri rw
  local label=$1 uri=$2 rw=$3
  fio --name="$label" --ioengine=nbd --uri="$uri" --rw="$rw" --bs=4k --iodepth=32 \
      --numjobs=1 --time_based --runtime="$RUNTIME" --ramp_time=2 --size="${WORKING_MIB}M" \
      --output-format=json 2>/dev/null | sed -n '/^{/,$p' > "$WORK/$label.json"
  python3 - "$label" "$WORK/$label.json" <<'PY'
import json, sys
label, path = sys.argv[1:]
job = json.load(open(path))["jobs"][0]
side = job["read"] if job["read"]["io_bytes"] else job["write"]
pct = side["clat_ns"].get("percentile", {})
print(f"| {label} | {side['iops']:.0f} | {pct.get('50.000000', 0) / 1000:.0f} | "
      f"{pct.get('99.000000', 0) / 1000:.0f} |")
PY
}

warm() {  # uri: read the working set once
  fio --name=warm --ioengine=nbd --uri="$1" --rw=read --bs=1m --iodepth=4 \
      --size="${WORKING_MIB}M" --output-format=json >/dev/null 2>&1
}

# uri: write the working set once, untimed. A new node's NVRAM file is
# sparse: the first store to each of its pages faults (on ext4, allocates
# it too), which cost the first job on fresh nodes (mirrored write-back)
# more than its own work and made that row swing 0.5x-2x between runs. A
# node in service pays it once; the jobs measure what follows.
fill() {
  fio --name=fill --ioengine=nbd --uri="$1" --rw=write --bs=1m --iodepth=4 \
      --size="${WORKING_MIB}M" --output-format=json >/dev/null 2>&1
}

ctl() { "$BUILD/svectl" --admin "127.0.0.1:$1" "${@:2}"; }

mode_of() {
  ctl "$1" --json vdisk show bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["mode"])'
}

wait_mode() {  # admin-port mode
  for _ in $(seq 1 300); do
    [ "$(mode_of "$1" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.1
  done
  echo "the vdisk did not reach $2" >&2; return 1
}

BACKEND_IOPS=${BACKEND_IOPS:-0}
CGROUP=""
LOOPS=()
cleanup() {
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true
  if [ -n "$CGROUP" ]; then
    echo $$ > /sys/fs/cgroup/blkio/cgroup.procs
    rmdir "$CGROUP" 2>/dev/null || true
  fi
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# backend FILE: the path a server is to use for FILE (a throttled loop
# device over it with BACKEND_IOPS).
backend() {
  if [ "$BACKEND_IOPS" -eq 0 ]; then echo "$1"; return; fi
  local loop
  loop=$(losetup -f --show --direct-io=on "$1")
  LOOPS+=("$loop")
  local dev
  dev=$(printf '%d:%d' "0x$(stat -c %t "$loop")" "0x$(stat -c %T "$loop")")
  echo "$dev $BACKEND_IOPS" > "$CGROUP/blkio.throttle.write_iops_device"
  echo "$dev $BACKEND_IOPS" > "$CGROUP/blkio.throttle.read_iops_device"
  echo "$loop"
}
if [ "$BACKEND_IOPS" -gt 0 ]; then
  CGROUP=/sys/fs/cgroup/blkio/sve-bench-$$
  mkdir "$CGROUP"
  echo $$ > "$CGROUP/cgroup.procs"  # the servers started from here inherit it
fi

dd if=/dev/urandom of="$WORK/m0.img" bs=1M count="$SIZE_MIB" status=none
M0=$(backend "$WORK/m0.img")
BUILD=build
node() {  # id nbd admin cluster
  rm -rf "$WORK/n$1"; mkdir -p "$WORK/n$1"
  "$BUILD/sved" --data-dir "$WORK/n$1" --nbd "127.0.0.1:$2" --admin "127.0.0.1:$3" \
    --cluster "127.0.0.1:$4" --node-id "$1" --quorum-device "$WORK/quorum" \
    --cache-size "${CACHE_MIB}M" --log-level warn "${SVED_EXTRA[@]}" &
}
SVED_EXTRA=()
sved_jobs() {  # BUILD_DIR LABEL_SUFFIX: the two-node group on that build
  BUILD=$1
  local sfx=$2
  # A fresh cluster each time: no label, no quorum record from the last one.
  dd if=/dev/zero of="$M0" bs=1M count=1 conv=notrunc status=none
  truncate -s 0 "$WORK/quorum"; truncate -s 1M "$WORK/quorum"
  node 1 $NBD1 $ADMIN1 $CLUSTER1
  P1=$!
  node 2 $NBD2 $ADMIN2 $CLUSTER2
  P2=$!
  wait_port $ADMIN1
  wait_port $ADMIN2
  ctl $ADMIN1 cluster create bench >/dev/null
  # (A build from before the cluster key has no --node-admin: a baseline.)
  local hand=()
  "$BUILD/svectl" node add --help 2>&1 | grep -q -- --node-admin && hand=(--node-admin "127.0.0.1:$ADMIN2")
  ctl $ADMIN1 node add --id 2 "127.0.0.1:$CLUSTER2" "${hand[@]}" >/dev/null
  for _ in $(seq 1 100); do
    ctl $ADMIN2 --json cluster status 2>/dev/null | grep -q '"quorum": true' && break
    sleep 0.1
  done
  ctl $ADMIN1 mdisk add m0 "$M0" >/dev/null
  ctl $ADMIN1 pool create p0 m0 >/dev/null
  ctl $ADMIN1 iogrp create g0 1 2 >/dev/null
  ctl $ADMIN1 vdisk create bench --pool p0 --size "$((SIZE_MIB - 64))M" --iogrp g0 --node 1 >/dev/null
  wait_mode $ADMIN1 write-back

  URI="nbd://127.0.0.1:$NBD1/bench"
  fill "$URI"
  run_fio "sved randwrite, write-back mirrored to the partner$sfx" "$URI" randwrite
  warm "$URI"
  run_fio "sved randread, cache hits$sfx" "$URI" randread
  # The same jobs sent to the partner, which forwards them to the owner.
  URI2="nbd://127.0.0.1:$NBD2/bench"
  run_fio "sved randwrite, forwarded by the partner to the owner$sfx" "$URI2" randwrite
  run_fio "sved randread, cache hits, forwarded by the partner$sfx" "$URI2" randread
  kill -TERM $P2; wait $P2 || true
  wait_mode $ADMIN1 write-through
  run_fio "sved randwrite, write-through (partner stopped)$sfx" "$URI" randwrite
  kill -TERM $P1; wait $P1 || true
}

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r); ${RUNTIME} s per job, working set ${WORKING_MIB} MiB, cache ${CACHE_MIB} MiB per node; back end $([ "$BACKEND_IOPS" -gt 0 ] && echo "a loop device limited to $BACKEND_IOPS read and $BACKEND_IOPS write IOPS" || echo "a file (O_DIRECT)")"
echo
echo "| job | IOPS | p50 µs | p99 µs |"
echo "|---|---|---|---|"
[ -n "${SVE_BASELINE:-}" ] && sved_jobs "$SVE_BASELINE" " (baseline)"
sved_jobs build ""
# The same build with the copies through the interconnect actor (CAF's
# middleman), as before the data channel: what the channel is worth.
SVED_EXTRA=(--data-channel off)
sved_jobs build " (copies via the interconnect actor)"
# And with reactors that poll 100 µs before they sleep (the default sleeps
# at once): what polling is worth, or costs where the nodes and fio share
# fewer CPUs than they have threads (as on a 2-CPU VM).
SVED_EXTRA=(--poll-us 100)
sved_jobs build " (--poll-us 100)"
SVED_EXTRA=()

dd if=/dev/urandom of="$WORK/q.img" bs=1M count="$SIZE_MIB" status=none
QIMG=$(backend "$WORK/q.img")
qemu-nbd --persistent --shared=4 --cache=none --aio=io_uring --format=raw \
  --bind=127.0.0.1 --port=$QPORT --export-name=bench "$QIMG" 2>>"$WORK/qemu.log" &
Q=$!
wait_port $QPORT
run_fio "qemu-nbd randwrite, --cache=none" "nbd://127.0.0.1:$QPORT/bench" randwrite
kill $Q; wait $Q 2>/dev/null || true
qemu-nbd --persistent --shared=4 --cache=writeback --aio=threads --format=raw \
  --bind=127.0.0.1 --port=$QPORT --export-name=bench "$QIMG" 2>>"$WORK/qemu.log" &
Q=$!
wait_port $QPORT
warm "nbd://127.0.0.1:$QPORT/bench"
run_fio "qemu-nbd randread, page cache hits" "nbd://127.0.0.1:$QPORT/bench" randread
run_fio "qemu-nbd randwrite, page cache (--cache=writeback)" "nbd://127.0.0.1:$QPORT/bench" randwrite
kill $Q; wait $Q 2>/dev/null || true

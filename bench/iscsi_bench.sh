#!/usr/bin/env bash
# SVE's iSCSI target beside tgtd (the Linux user-space target a user would
# otherwise run) on the same kind of backing file, and beside SVE's own NBD
# front end and the file itself, in one run: 4 KiB random read and write at
# QD32, one connection each.
#   - iSCSI load: bench/iscsi_load.c (libiscsi's async API; fio here has no
#     iSCSI engine), built here
#   - NBD load and the file's limit: fio (nbd engine; io_uring, O_DIRECT)
#   - tgtd with its file opened O_DIRECT (--bsoflags direct), as SVE's is
#
#   bench/iscsi_bench.sh [SIZE_MIB] [RUNTIME_S]    (SVE_BASELINE=DIR as in compare_nbd.sh)
#
# Needs root (tgtd), libiscsi-dev, libiscsi-bin, tgt, fio.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
RUNTIME=${2:-15}
WORK=$(mktemp -d /tmp/sve-iscsi-bench-XXXXXX)
TPID=
# (tgtd outlives a plain kill while it has targets: it is killed outright.)
trap '[ -n "$TPID" ] && kill -9 $TPID 2>/dev/null; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/common.sh
cc -O2 -o "$WORK/iscsi_load" bench/iscsi_load.c -liscsi

fill() { dd if=/dev/urandom of="$1" bs=1M count="$SIZE_MIB" status=none; sync; }

iscsi_row() {  # label job rw url
  local out
  out=$("$WORK/iscsi_load" "$4" "$3" 4096 32 "$RUNTIME")
  python3 - "$1" "$2" "$out" <<'PY'
import json, sys
label, name, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"| {label} | {name} | {out['iops']:.0f} | {out['mib_s']:.1f} | {out['p50_us']} | {out['p99_us']} |")
PY
}

fio_job() {  # label job rw [engine args...]
  local label=$1 name=$2 rw=$3
  shift 3
  fio --name="$name" "$@" --rw="$rw" --bs=4k --iodepth=32 --numjobs=1 --time_based \
      --runtime="$RUNTIME" --ramp_time=2 --size="$((SIZE_MIB - 16))M" --output-format=json \
      2>/dev/null | sed -n '/^{/,$p' > "$WORK/$label-$name.json"
  fio_row "$label" "$name" "$WORK/$label-$name.json"
}

sved_on() {  # label file [build-dir]
  local build=${3:-build}
  dd if=/dev/zero of="$2" bs=1M count=4 conv=notrunc status=none
  rm -rf "$WORK/sved"; mkdir -p "$WORK/sved"
  "$build"/sved --data-dir "$WORK/sved" --nbd 127.0.0.1:21809 --admin 127.0.0.1:21810 \
    --iscsi 127.0.0.1:21260 --iscsi-target iqn.2026-12.org.sve:bench --log-level warn &
  local pid=$!
  wait_port 21810
  export SVE_ADMIN=127.0.0.1:21810
  "$build"/svectl mdisk add m0 "$2" >/dev/null
  "$build"/svectl pool create p0 m0 >/dev/null
  "$build"/svectl vdisk create bench --pool p0 --size "$((SIZE_MIB - 16))M" >/dev/null
  local url=iscsi://127.0.0.1:21260/iqn.2026-12.org.sve:bench/0
  iscsi_row "$1 iSCSI" randread-4k read "$url"
  iscsi_row "$1 iSCSI" randwrite-4k write "$url"
  fio_job "$1 NBD" randread-4k randread --ioengine=nbd --uri=nbd://127.0.0.1:21809/bench
  fio_job "$1 NBD" randwrite-4k randwrite --ioengine=nbd --uri=nbd://127.0.0.1:21809/bench
  kill -TERM $pid; wait $pid || true
}

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, kernel $(uname -r), ${SIZE_MIB} MiB, ${RUNTIME} s per job"
echo
echo "| server | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
fill "$WORK/sve.img"
sved_on "sved file" "$WORK/sve.img"
[ -n "${SVE_BASELINE:-}" ] && sved_on "sved file (baseline)" "$WORK/sve.img" "$SVE_BASELINE"

fill "$WORK/tgt.img"
tgtd -f --iscsi portal=127.0.0.1:21261 >/dev/null 2>&1 &
TPID=$!
wait_port 21261
tgtadm --lld iscsi --op new --mode target --tid 1 -T iqn.2026-12.test:bench
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$WORK/tgt.img" --bsoflags direct
tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
iscsi_row "tgtd (O_DIRECT)" randread-4k read iscsi://127.0.0.1:21261/iqn.2026-12.test:bench/1
iscsi_row "tgtd (O_DIRECT)" randwrite-4k write iscsi://127.0.0.1:21261/iqn.2026-12.test:bench/1
kill -9 $TPID; wait $TPID 2>/dev/null || true; TPID=

fio_job "fio io_uring direct" randread-4k randread --ioengine=io_uring --direct=1 --filename="$WORK/tgt.img"
fio_job "fio io_uring direct" randwrite-4k randwrite --ioengine=io_uring --direct=1 --filename="$WORK/tgt.img"

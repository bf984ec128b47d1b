#!/usr/bin/env bash
# Runs the same fio jobs (nbd engine) against sved, qemu-nbd and nbdkit file
# serving the same kind of backing file, and prints one table:
# 4 KiB random read and write at QD32, and 1 MiB sequential read and write.
#
#   bench/compare_nbd.sh [SIZE_MIB] [RUNTIME_S]
#
# Needs a built tree (scripts/build.sh) and fio, qemu-utils, nbdkit.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
RUNTIME=${2:-15}
WORK=$(mktemp -d /tmp/sve-bench-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=20809

fill() {  # a fully written backing file, so no server reads holes
  dd if=/dev/urandom of="$1" bs=1M count="$SIZE_MIB" status=none
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; return 1
}

run_fio() {  # server-label export job-name rw bs
  local label=$1 export=$2 name=$3 rw=$4 bs=$5
  fio --name="$name" --ioengine=nbd --uri="nbd://127.0.0.1:$PORT/$export" \
      --rw="$rw" --bs="$bs" --iodepth=32 --numjobs=1 --time_based --runtime="$RUNTIME" \
      --ramp_time=2 --size="$((SIZE_MIB - 16))M" --output-format=json 2>/dev/null \
    | sed -n '/^{/,$p' > "$WORK/$label-$name.json"
  python3 - "$label" "$name" "$WORK/$label-$name.json" <<'PY'
import json, sys
label, name, path = sys.argv[1:]
job = json.load(open(path))["jobs"][0]
side = job["read"] if job["read"]["io_bytes"] else job["write"]
pct = side["clat_ns"].get("percentile", {})
print(f"| {label} | {name} | {side['iops']:.0f} | {side['bw_bytes'] / 2**20:.1f} | "
      f"{pct.get('50.000000', 0) / 1000:.0f} | {pct.get('99.000000', 0) / 1000:.0f} |")
PY
}

jobs_for() {  # label export
  run_fio "$1" "$2" randread-4k randread 4k
  run_fio "$1" "$2" randwrite-4k randwrite 4k
  run_fio "$1" "$2" seqread-1m read 1m
  run_fio "$1" "$2" seqwrite-1m write 1m
}

echo "| server | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"

# sved: one file mdisk (O_DIRECT), a pool with one vdisk covering it.
mkdir -p "$WORK/sved"
fill "$WORK/sved/m0.img"
build/sved --data-dir "$WORK/sved" --nbd 127.0.0.1:$PORT --admin 127.0.0.1:20810 \
  --cores "${SVE_CORES:-1}" --log-level warn &
SVED_PID=$!
wait_port 20810
export SVE_ADMIN=127.0.0.1:20810
build/svectl mdisk add m0 "$WORK/sved/m0.img" >/dev/null
build/svectl pool create p0 m0 >/dev/null
build/svectl vdisk create bench --pool p0 --size "$((SIZE_MIB - 16))M" >/dev/null
jobs_for sved bench
kill -TERM $SVED_PID; wait $SVED_PID || true

# qemu-nbd with the page cache bypassed, as SVE has no cache of its own yet.
fill "$WORK/qemu.img"
qemu-nbd --persistent --shared=4 --cache=none --aio=io_uring --format=raw \
  --bind=127.0.0.1 --port=$PORT --export-name=bench "$WORK/qemu.img" &
QPID=$!
wait_port $PORT
jobs_for "qemu-nbd" bench
kill $QPID; wait $QPID 2>/dev/null || true

fill "$WORK/nbdkit.img"
nbdkit --foreground --ipaddr 127.0.0.1 --port $PORT file \
  "$WORK/nbdkit.img" cache=none &
KPID=$!
wait_port $PORT
jobs_for "nbdkit file" ""
kill $KPID; wait $KPID 2>/dev/null || true

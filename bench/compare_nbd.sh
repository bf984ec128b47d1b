#!/usr/bin/env bash
# Runs the same fio jobs (nbd engine) against sved and the servers a user
# would otherwise pick, and prints one table: 4 KiB random read and write at
# QD32, and 1 MiB sequential read and write.
#   - sved on a file mdisk (O_DIRECT, no cache) and on a memory mdisk
#   - qemu-nbd --cache=none --aio=io_uring on a file of the same size
#   - nbdkit file (cache=none) and nbdkit memory (the protocol's ceiling)
#   - fio's own io_uring engine on the file with O_DIRECT, no network, for
#     reference
#
#   bench/compare_nbd.sh [SIZE_MIB] [RUNTIME_S]     (SVE_CORES=N for sved)
#
# SVE_BASELINE=DIR (another build directory, say of the previous commit)
# adds its sved beside this one's, in the same run: what a change cost.
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

source bench/common.sh

run_fio() {  # server-label export job-name rw bs [engine args...]
  local label=$1 export=$2 name=$3 rw=$4 bs=$5
  shift 5
  local target=(--ioengine=nbd --uri="nbd://127.0.0.1:$PORT/$export")
  [ $# -gt 0 ] && target=("$@")
  fio --name="$name" "${target[@]}" \
      --rw="$rw" --bs="$bs" --iodepth=32 --numjobs=1 --time_based --runtime="$RUNTIME" \
      --ramp_time=2 --size="$((SIZE_MIB - 16))M" --output-format=json 2>/dev/null \
    | sed -n '/^{/,$p' > "$WORK/$label-$name.json"
  fio_row "$label" "$name" "$WORK/$label-$name.json"
}

jobs_for() {  # label export [engine args...]
  local label=$1 export=$2
  shift 2
  run_fio "$label" "$export" randread-4k randread 4k "$@"
  run_fio "$label" "$export" randwrite-4k randwrite 4k "$@"
  run_fio "$label" "$export" seqread-1m read 1m "$@"
  run_fio "$label" "$export" seqwrite-1m write 1m "$@"
}

sved_on() {  # label mdisk-spec [build-dir]
  local build=${3:-build}
  # A file mdisk another sved labelled (the baseline's run after this
  # one's) would be refused: its label area is cleared first.
  [ -f "$2" ] && dd if=/dev/zero of="$2" bs=1M count=4 conv=notrunc status=none
  rm -rf "$WORK/sved"
  mkdir -p "$WORK/sved"
  "$build"/sved --data-dir "$WORK/sved" --nbd 127.0.0.1:$PORT --admin 127.0.0.1:20810 \
    --cores "${SVE_CORES:-1}" --log-level warn "${SVED_EXTRA[@]}" &
  local pid=$!
  wait_port 20810
  export SVE_ADMIN=127.0.0.1:20810
  "$build"/svectl mdisk add m0 "$2" >/dev/null
  "$build"/svectl pool create p0 m0 >/dev/null
  "$build"/svectl vdisk create bench --pool p0 --size "$((SIZE_MIB - 16))M" >/dev/null
  jobs_for "$1" bench
  kill -TERM $pid; wait $pid || true
}

SVED_EXTRA=()
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r), ${SIZE_MIB} MiB, ${RUNTIME} s per job, sved cores: ${SVE_CORES:-1}"
echo
echo "| server | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"

# sved: one file mdisk (O_DIRECT), a pool with one vdisk covering it; then
# the same on a memory mdisk.
fill "$WORK/sve-m0.img"
sved_on "sved file" "$WORK/sve-m0.img"
[ -n "${SVE_BASELINE:-}" ] && sved_on "sved file (baseline)" "$WORK/sve-m0.img" "$SVE_BASELINE"
sved_on "sved memory" "memory:${SIZE_MIB}M"
# The same without the cache (on a standalone node it writes through and
# keeps what it read): what the cache costs where it cannot help.
SVED_EXTRA=(--cache-size 0)
sved_on "sved memory, --cache-size 0" "memory:${SIZE_MIB}M"
SVED_EXTRA=()
[ -n "${SVE_BASELINE:-}" ] && sved_on "sved memory (baseline)" "memory:${SIZE_MIB}M" "$SVE_BASELINE"

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

nbdkit --foreground --ipaddr 127.0.0.1 --port $PORT memory "${SIZE_MIB}M" &
KPID=$!
wait_port $PORT
jobs_for "nbdkit memory" ""
kill $KPID; wait $KPID 2>/dev/null || true

# No server at all: what the file and kernel give one fio thread.
jobs_for "fio io_uring direct" "" --ioengine=io_uring --direct=1 --filename="$WORK/nbdkit.img"

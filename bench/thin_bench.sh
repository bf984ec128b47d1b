#!/usr/bin/env bash
# Thin provisioning, measured with fio (nbd engine, QD32, one job) against
# one sved, in one run, on a file mdisk (O_DIRECT) and on a memory mdisk:
#   - first writes: one 4 KiB write per grain (fio rw=write:28k with 32 KiB
#     grains), so every write of the thin vdisk allocates; the same pattern
#     on a fully allocated vdisk of the same size
#   - then 4 KiB random writes and reads over the whole vdisk, every grain
#     allocated by then, against the fully allocated vdisk
# and the metadata I/O per allocated grain (map page writes and flushes,
# from the thin facility's own counters).
#
#   bench/thin_bench.sh [SIZE_MIB] [RUNTIME_S]
#
# Needs a built tree (scripts/build.sh) and fio.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-2048}
RUNTIME=${2:-10}
WORK=$(mktemp -d /tmp/sve-thin-bench-XXXXXX)
PORT=22809 ADMIN=22810
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/common.sh
export SVE_ADMIN=127.0.0.1:$ADMIN
VDISK_MIB=$((SIZE_MIB / 2 - 96))

fio_job() {  # label export name rw bs [fio args...]: one table row
  local label=$1 export=$2 name=$3 rw=$4 bs=$5
  shift 5
  fio --name="$name" --ioengine=nbd --uri="nbd://127.0.0.1:$PORT/$export" \
      --rw="$rw" --bs="$bs" --iodepth=32 --numjobs=1 --size="${VDISK_MIB}M" "$@" \
      --output-format=json 2>/dev/null | sed -n '/^{/,$p' > "$WORK/$label-$name.json"
  fio_row "$label" "$name" "$WORK/$label-$name.json"
}

thin_counters() {  # the thin facility's counters on core 0, as "allocations pages flushes"
  build/svectl --json shell -c 'inspect thin/0' | python3 -c '
import json, sys
s = json.load(sys.stdin)
s = s.get("state", s)
print(s["allocations"], s["meta_writes"], s["flushes"])'
}

run_on() {  # label mdisk-spec
  local label=$1 spec=$2
  rm -rf "$WORK/sved"
  mkdir -p "$WORK/sved"
  build/sved --data-dir "$WORK/sved" --nbd 127.0.0.1:$PORT --admin 127.0.0.1:$ADMIN \
    --cores 1 --log-level warn &
  local pid=$!
  wait_port $ADMIN
  build/svectl mdisk add m0 "$spec" >/dev/null
  build/svectl pool create p0 m0 >/dev/null
  build/svectl vdisk create thick --pool p0 --size "${VDISK_MIB}M" >/dev/null
  build/svectl vdisk create thin --pool p0 --size "${VDISK_MIB}M" --thin --grain 32K \
    --rsize 64M >/dev/null
  # First writes: one 4 KiB write per 32 KiB, one pass over the vdisk.
  fio_job "$label, fully allocated" thick first-writes write:28k 4k
  read -r a0 p0 f0 < <(thin_counters)
  fio_job "$label, thin" thin first-writes write:28k 4k
  read -r a1 p1 f1 < <(thin_counters)
  # Every grain is allocated now: random I/O over the whole vdisk.
  for vd in thick thin; do
    local what="fully allocated"
    [ $vd = thin ] && what="thin, allocated"
    fio_job "$label, $what" $vd randwrite-4k randwrite 4k --time_based --runtime="$RUNTIME" \
      --ramp_time=2
    fio_job "$label, $what" $vd randread-4k randread 4k --time_based --runtime="$RUNTIME" \
      --ramp_time=2
  done
  local grains=$((a1 - a0))
  echo "| $label, thin | metadata | $grains grains allocated | $((p1 - p0)) map page writes | $((f1 - f0)) flushes | $(python3 -c "print(f'{($p1 - $p0) / max(1, $grains):.3f} page writes per grain')") |"
  kill -TERM $pid; wait $pid || true
}

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, kernel $(uname -r), vdisks of ${VDISK_MIB} MiB, ${RUNTIME} s per random job"
echo
echo "| sved | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
dd if=/dev/zero of="$WORK/m0.img" bs=1M count=0 seek="$SIZE_MIB" status=none
fallocate -l "${SIZE_MIB}M" "$WORK/m0.img"
run_on "file" "$WORK/m0.img"
run_on "memory" "memory:${SIZE_MIB}M"

#!/usr/bin/env bash
# Point-in-time copy, measured with fio (nbd engine, one job) against one
# sved (one core), in one run, on a file mdisk (O_DIRECT):
#   - 4 KiB random writes to a vdisk in no mapping (the reference)
#   - first writes to a snapshotted source (copy rate 0): one 4 KiB write
#     per 64 KiB grain, so every write copies a grain first; the same
#     pattern on the reference vdisk
#   - 4 KiB random writes to the source once every grain is copied
#   - the first-writes pattern on the source of an incremental refresh
#     that stays copying: each grain's first write waits for its bit on the
#     bitmap's second plane; then the same pattern again (no waits)
#   - the background copy at copy rate 150 of a whole vdisk to a fully
#     allocated target, nothing else running, against fio's raw sequential
#     256 KiB writes (io_uring, O_DIRECT) of a file of the same size on the
#     same disk
#   - 4 KiB random writes at QD1 to the first 16 MiB of the source for 5 s
#     while a copy at rate 100 (64 MiB/s: longer than the job) runs through
#     the rest (latency), against the same job with no copy
#
#   [SVE_BASELINE=<build dir>] bench/flashcopy_bench.sh [SIZE_MIB] [RUNTIME_S]
#
# With SVE_BASELINE, every sved row is measured first with that build's
# sved and svectl (labelled "baseline: "), then with this tree's.
#
# Needs a built tree (scripts/build.sh) and fio.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-2048}
RUNTIME=${2:-10}
WORK=$(mktemp -d /tmp/sve-fc-bench-XXXXXX)
PORT=22811 ADMIN=22812
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/common.sh
export SVE_ADMIN=127.0.0.1:$ADMIN
VDISK_MIB=$((SIZE_MIB / 4 - 32))

fio_job() {  # label export name rw bs depth [fio args...]: one table row
  local label=$1 export=$2 name=$3 rw=$4 bs=$5 depth=$6
  shift 6
  fio --name="$name" --ioengine=nbd --uri="nbd://127.0.0.1:$PORT/$export" \
      --rw="$rw" --bs="$bs" --iodepth="$depth" --numjobs=1 --size="${VDISK_MIB}M" "$@" \
      --output-format=json 2>/dev/null | sed -n '/^{/,$p' > "$WORK/$label-$name.json"
  fio_row "$label" "$name" "$WORK/$label-$name.json"
}

PY=$(command -v /usr/bin/python3 || command -v python3)  # (a pyenv shim takes 0.3 s a call)
fc_state() {
  "${B:-build}"/svectl --json fcmap show "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])'
}

prepare_map() {
  "${B:-build}"/svectl fcmap prepare "$1" >/dev/null
  until [ "$(fc_state "$1")" = prepared ]; do sleep 0.05; done
}

start_map() {  # name: prepare, start, wait until copying
  prepare_map "$1"
  "${B:-build}"/svectl fcmap start "$1" >/dev/null
  # (A copy at rate 150 may be over before a poll sees `copying`.)
  until [[ "$(fc_state "$1")" =~ ^(copying|idle_or_copied)$ ]]; do sleep 0.05; done
}

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, kernel $(uname -r), vdisks of ${VDISK_MIB} MiB, ${RUNTIME} s per random job"
echo
echo "| sved | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
run_sved() {  # BUILD_DIR TAG: every sved row, that build's sved and svectl
  local B=$1 TAG=$2
  rm -rf "$WORK/sved" "$WORK/m0.img"
  dd if=/dev/zero of="$WORK/m0.img" bs=1M count=0 seek="$SIZE_MIB" status=none
  fallocate -l "${SIZE_MIB}M" "$WORK/m0.img"
  mkdir -p "$WORK/sved"
  "$B"/sved --data-dir "$WORK/sved" --nbd 127.0.0.1:$PORT --admin 127.0.0.1:$ADMIN \
    --cores 1 --log-level warn &
  SVED=$!
  wait_port $ADMIN
  "$B"/svectl mdisk add m0 "$WORK/m0.img" >/dev/null
  "$B"/svectl pool create p0 m0 >/dev/null
  for vd in plain src tgt full; do
    "$B"/svectl vdisk create $vd --pool p0 --size "${VDISK_MIB}M" >/dev/null
  done
  # The source holds data everywhere (a grain copy moves real bytes).
  fio_job "${TAG}file" src fill write 1m 8 >/dev/null
  fio_job "${TAG}file, no mapping" plain randwrite-4k randwrite 4k 32 --time_based --runtime="$RUNTIME" \
    --ramp_time=2
  fio_job "${TAG}file, no mapping" plain first-writes write:60k 4k 32
  "$B"/svectl fcmap create --source src --target tgt --name snap --copyrate 0 --grain 64K >/dev/null
  start_map snap
  fio_job "${TAG}file, snapshot source" src first-writes write:60k 4k 32
  fio_job "${TAG}file, snapshot source, copied" src randwrite-4k randwrite 4k 32 --time_based \
    --runtime="$RUNTIME" --ramp_time=2
  "$B"/svectl fcmap stop snap >/dev/null
  "$B"/svectl fcmap delete snap >/dev/null

  # An incremental refresh that stays copying (copy rate 0, one grain left
  # to copy): the first write of each grain during it waits until the
  # bitmap's second plane says the grain was written (a FUA page write,
  # shared by the writes meanwhile); later writes do not wait.
  "$B"/svectl fcmap create --source src --target tgt --name inc --copyrate 150 --grain 64K \
    --incremental >/dev/null
  start_map inc
  until [ "$(fc_state inc)" = idle_or_copied ]; do sleep 0.1; done
  fio_job "${TAG}file" src one-grain write 4k 1 --size=4k >/dev/null
  "$B"/svectl fcmap set inc --copyrate 0 >/dev/null
  start_map inc
  fio_job "${TAG}file, incremental refresh source" src first-writes write:60k 4k 32
  fio_job "${TAG}file, incremental refresh source, written" src first-writes write:60k 4k 32
  "$B"/svectl fcmap stop inc >/dev/null
  "$B"/svectl fcmap delete inc >/dev/null

  copy_time() {  # name rate: the whole vdisk copied, nothing else running; MiB/s
    "$B"/svectl fcmap create --source src --target full --name "$1" --copyrate "$2" >/dev/null
    prepare_map "$1"
    local t0 t1
    t0=$(date +%s.%N)  # (from the start's command: the copy may end before a poll sees it)
    "$B"/svectl fcmap start "$1" >/dev/null
    until [ "$(fc_state "$1")" = idle_or_copied ]; do sleep 0.02; done
    t1=$(date +%s.%N)
    "$B"/svectl fcmap delete "$1" >/dev/null
    python3 -c "print(f'| ${TAG}file, background copy at rate $2 | whole vdisk | - | {$VDISK_MIB / ($t1 - $t0):.1f} | - | - |')"
  }
  copy_time clone150 150
  fio_job "${TAG}file, no copy running" src randwrite-4k-qd1 randwrite 4k 1 --time_based --runtime=5 \
    --size=16M
  "$B"/svectl fcmap create --source src --target full --name clone --copyrate 100 >/dev/null
  start_map clone
  fio_job "${TAG}file, copy rate 100 running" src randwrite-4k-qd1 randwrite 4k 1 --time_based --runtime=5 \
    --size=16M
  [ "$(fc_state clone)" = copying ] || echo "(the copy ended before the job: not a measure under copy)"
  until [ "$(fc_state clone)" = idle_or_copied ]; do sleep 0.1; done
  kill -TERM $SVED; wait $SVED || true
}

# The build before a change (SVE_BASELINE=<build dir>) first, then this one,
# in the same run.
[ -n "${SVE_BASELINE:-}" ] && run_sved "$SVE_BASELINE" "baseline: "
run_sved build ""
# The limit: raw sequential writes of the same bytes on the same disk.
fio --name=raw --filename="$WORK/m0.img" --ioengine=io_uring --direct=1 --rw=write --bs=256k \
    --iodepth=8 --size="${VDISK_MIB}M" --output-format=json 2>/dev/null \
    | sed -n '/^{/,$p' > "$WORK/raw.json"
fio_row "raw file (fio io_uring, O_DIRECT)" "write-256k-qd8" "$WORK/raw.json"

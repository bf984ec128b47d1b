#!/usr/bin/env bash
# This build's sved against another build's, interleaved: both serve at
# once (each its own file mdisk of the same size, O_DIRECT, one core), and
# fio's 4 KiB random jobs (nbd engine, QD32) alternate between them, round
# after round. On a machine whose disk drifts by a third within minutes,
# compare_nbd.sh's one-after-the-other rows can show a "regression" that is
# the disk's; here both sides meet the same drift. Prints every round and
# the ratio of the sums.
#
#   bench/ab_nbd.sh BASELINE_BUILD_DIR [ROUNDS] [RUNTIME_S] [SIZE_MIB]
#   (JOBS="randwrite randread" by default)
#
# Needs two built trees (scripts/build.sh; a worktree of the older commit
# for the baseline) and fio.
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=${1:?the baseline build directory}
ROUNDS=${2:-5}
RUNTIME=${3:-5}
SIZE_MIB=${4:-512}
WORK=$(mktemp -d /tmp/sve-ab-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/common.sh

serve() {  # name build nbd-port admin-port
  dd if=/dev/urandom of="$WORK/$1.img" bs=1M count="$SIZE_MIB" status=none
  mkdir -p "$WORK/$1"
  "$2"/sved --data-dir "$WORK/$1" --nbd 127.0.0.1:"$3" --admin 127.0.0.1:"$4" --cores 1 \
    --log-level warn &
  wait_port "$4"
  SVE_ADMIN=127.0.0.1:$4 "$2"/svectl mdisk add m0 "$WORK/$1.img" >/dev/null
  SVE_ADMIN=127.0.0.1:$4 "$2"/svectl pool create p0 m0 >/dev/null
  SVE_ADMIN=127.0.0.1:$4 "$2"/svectl vdisk create bench --pool p0 \
    --size "$((SIZE_MIB - 16))M" >/dev/null
}
serve this build 20821 20822
serve baseline "$BASELINE" 20823 20824

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, ${SIZE_MIB} MiB files, ${RUNTIME} s per job, ${ROUNDS} rounds"
echo
echo "| server | job | IOPS | MiB/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
declare -A sum
for rw in ${JOBS:-randwrite randread}; do
  for _ in $(seq 1 "$ROUNDS"); do
    for side in this:20821 baseline:20823; do
      fio --name=ab --ioengine=nbd --uri="nbd://127.0.0.1:${side#*:}/bench" --rw="$rw" --bs=4k \
          --iodepth=32 --time_based --runtime="$RUNTIME" --ramp_time=1 \
          --size="$((SIZE_MIB - 32))M" --output-format=json 2>/dev/null \
        | sed -n '/^{/,$p' > "$WORK/r.json"
      fio_row "${side%:*}" "$rw-4k" "$WORK/r.json"
      iops=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1]))['jobs'][0]; s=j['read'] if j['read']['io_bytes'] else j['write']; print(int(s['iops']))" "$WORK/r.json")
      sum[${side%:*}-$rw]=$(( ${sum[${side%:*}-$rw]:-0} + iops ))
    done
  done
done
echo
for rw in ${JOBS:-randwrite randread}; do
  python3 -c "import sys; print(f'{sys.argv[1]}-4k: this / baseline = {int(sys.argv[2]) / int(sys.argv[3]):.2f}x')" \
    "$rw" "${sum[this-$rw]}" "${sum[baseline-$rw]}"
done

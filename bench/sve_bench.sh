#!/usr/bin/env bash
# In-process throughput of the facility stack (sve-bench), without sockets:
# 4 KiB random read and write at QD32 per core on a null mdisk, for 1..N
# cores, then a memory mdisk, then a mirrored write-back pair (--mirror: the
# owner's stack and its partner's over a loopback data channel; "mirror"
# in the mdisk column: on one core, then 1, 2, 4... cores a node as long
# as both nodes' cores fit in MAX_CORES); prints a markdown table.
#
#   bench/sve_bench.sh [MAX_CORES] [SECONDS]
#
# SVE_BUILD_DIR=DIR: the build to measure (default build/).
# SVE_BASELINE=DIR (another build directory, say of the previous commit)
# runs each job with its sve-bench too, right after this one's: a change's
# cost, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${1:-$(nproc)}
SECONDS_PER=${2:-10}
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r), ${SECONDS_PER} s per job"
echo
echo "| mdisk | job | cores | IOPS | IOPS per core | MB/s | p50 µs | p99 µs | p99.9 µs |"
echo "|---|---|---|---|---|---|---|---|---|"
BUILD=${SVE_BUILD_DIR:-build}
row() {
  one "$BUILD" "" "$@"
  [ -n "${SVE_BASELINE:-}" ] && one "$SVE_BASELINE" " (baseline)" "$@"
  return 0
}
one() {  # build-dir label-suffix sve-bench-args...
  local build=$1 suffix=$2
  shift 2
  "$build"/sve-bench --json "$@" --time "$SECONDS_PER" | SUFFIX="$suffix" python3 -c '
import json, os, sys
r = json.load(sys.stdin)
job = "%s %dK qd%d" % (r["rw"], r["bs"] // 1024, r["qd"])
pair = ""
if r.get("mirror"):
    pair = ", mirrored pair" if r["cores"] == 1 else ", mirrored pair (%d core%s a node)" % (r["pairs"], "" if r["pairs"] == 1 else "s")
print("| %s%s%s | %s | %d | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f |" % (
    r["mdisk"], pair, os.environ["SUFFIX"], job, r["cores"], r["iops"], r["iops_per_core"],
    r["mb_per_s"], r["p50_us"], r["p99_us"], r["p999_us"]))'
}
cores=1
while [ "$cores" -le "$MAX" ]; do
  row --mdisk null:4G --cores "$cores" --rw randread
  row --mdisk null:4G --cores "$cores" --rw randwrite
  cores=$((cores * 2))
done
row --mdisk memory:2G --cores 1 --rw randread
row --mdisk memory:2G --cores 1 --rw randwrite
row --mdisk null:4G --cores 1 --rw read --bs 1M
# The mirrored pair: the whole volume in the cache (null:128M), then a
# volume 16 times the cache (destage all along); one core for both nodes,
# then 1, 2, 4... cores a node (a vdisk and a data channel connection per
# core pair). "IOPS per core" counts both nodes' cores.
for cores in 1 2 4 8 16 32; do
  [ "$cores" -le "$MAX" ] || break
  one "$BUILD" "" --mirror --mdisk null:128M --cores "$cores" --rw randwrite
  one "$BUILD" "" --mirror --mdisk null:4G --cores "$cores" --rw randwrite
done

#!/usr/bin/env bash
# Runs the whole suite (build/, already built) RUNS times with HOGS busy
# loops beside it, to find tests that depend on timing; prints every test
# that failed in any run and keeps each run's log in build/stress/.
#
#   scripts/stress-suite.sh [RUNS [HOGS]]      (default 5 runs, 2 hogs)
set -uo pipefail
cd "$(dirname "$0")/../build"
runs=${1:-5}
hogs=${2:-2}
mkdir -p stress
pids=()
for ((i = 0; i < hogs; i++)); do (while :; do :; done) & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
failed=0
for ((r = 1; r <= runs; r++)); do
  start=$(date +%s)
  ctest -j2 --timeout 600 --output-on-failure > "stress/run-$r.log" 2>&1
  rc=$?
  echo "run $r: rc=$rc, $(( $(date +%s) - start )) s" \
    "$(grep -E '^[0-9]+% tests passed' "stress/run-$r.log")"
  grep -E '\*\*\*(Failed|Timeout)|\(Failed\)|\(Timeout\)' "stress/run-$r.log" | sed 's/^/    /'
  ((rc == 0)) || failed=$((failed + 1))
done
echo "$failed of $runs runs failed"
exit $((failed > 0))

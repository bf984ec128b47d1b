#!/usr/bin/env bash
# A libFuzzer campaign on one fuzz target (tests/fuzz/fuzz_TARGET.cpp) with
# clang, ASan and UBSan, starting from its corpus; new inputs that add
# coverage are merged back into tests/fuzz/corpus/TARGET (commit the ones
# worth keeping: CI replays them). A crash leaves crash-* in build-fuzz/.
#
#   scripts/fuzz.sh TARGET [SECONDS [RUNS]]   TARGET: nbd_request nbd_handshake cluster_codec
#                                             admin_request iscsi_text scsi_cdb iscsi_connection
# With RUNS the campaign stops after that many executions (or SECONDS,
# whichever comes first): the 10-million-run campaigns use it.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-60}
runs=${3:--1}
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSVE_FUZZ=ON -DSVE_SANITIZE=ON >/dev/null
ninja -C build-fuzz -j "${SVE_JOBS:-2}" "fuzz_${target}"
corpus=tests/fuzz/corpus/$target
mkdir -p "$corpus" build-fuzz/new-$target
cd build-fuzz
# (Interrupted, or ended on a finding, what it found so far is merged all
# the same; its exit status is passed on.)
status=0
"./tests/fuzz/fuzz_${target}" -max_total_time="$seconds" -runs="$runs" -max_len=16384 -print_final_stats=1 \
  "new-$target" "../$corpus" || status=$?
"./tests/fuzz/fuzz_${target}" -merge=1 "../$corpus" "new-$target" >/dev/null 2>&1
echo "corpus: $(ls "../$corpus" | wc -l) inputs in $corpus"
exit "$status"

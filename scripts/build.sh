#!/usr/bin/env bash
# Configures and builds SVE into build/ (ccache, two jobs: CI has 2 cores).
#   scripts/build.sh [BUILD_DIR [CMAKE_ARGS...]]   (default build/, RelWithDebInfo)
# SVE_TARGETS="a b" builds only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
# Paths relative to the tree, so a copy of it elsewhere (the mutation
# runner's scratch copy) hits the same ccache entries.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# shellcheck disable=SC2086
ninja -C "$dir" -j "${SVE_JOBS:-2}" ${SVE_TARGETS:-}

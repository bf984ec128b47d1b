#!/usr/bin/env bash
# Configures and builds SVE into build/ (ccache, two jobs: CI has 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j "${SVE_JOBS:-2}"

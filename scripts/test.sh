#!/usr/bin/env bash
# README command 2: install, build, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "${SVE_TEST_JOBS:-2}" --timeout 600

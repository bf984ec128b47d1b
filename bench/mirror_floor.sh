#!/usr/bin/env bash
# The floor under a mirrored pair's figure (bench/mirror_floor.cpp): what
# the passes over a block that a mirrored write needs cost here, three
# runs. Needs g++, GnuTLS and ISA-L (scripts/install-deps.sh has them).
#
#   bench/mirror_floor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/sve-floor-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
g++ -O2 -std=c++20 -o "$WORK/mirror_floor" bench/mirror_floor.cpp -lgnutls -lisal -lpthread
for run in 1 2 3; do
  echo "run $run:"
  "$WORK/mirror_floor"
done

#!/usr/bin/env bash
# Runs the cluster protocol simulator over as many seeds as fit in the time
# given (default 60 s), starting at a seed (default: one picked from the
# clock, so repeated runs cover new ground), and prints every failing seed.
# Replay one with: build/tests/cluster_sim --seed N (SVE_SIM_TRACE=1 to see
# every protocol message).
#
#   scripts/sim-seeds.sh [SECONDS] [FIRST_SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_BUDGET=${1:-60}
FIRST=${2:-$(( $(date +%s) % 1000000 * 1000 ))}
[ -x build/tests/cluster_sim ] || scripts/build.sh
echo "seeds from $FIRST for ${SECONDS_BUDGET} s"
build/tests/cluster_sim --seeds "$FIRST-18446744073709551614" --time "$SECONDS_BUDGET"

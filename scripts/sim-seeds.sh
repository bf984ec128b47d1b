#!/usr/bin/env bash
# Runs a simulator over as many seeds as fit in the time given (default
# 60 s), starting at a seed (default: one picked from the clock, so repeated
# runs cover new ground), and prints every failing seed.
#   cluster   the cluster protocol core (the default); replay one with
#             build/tests/cluster_sim --seed N (SVE_SIM_TRACE=1 to see every
#             protocol message)
#   datapath  the nodes' forward, cache and virtualization facilities over it;
#             replay with build/tests/datapath_sim --seed N --trace; extra
#             arguments go to it (--nodes 2|4, --scenario NAME)
#
#   scripts/sim-seeds.sh [cluster|datapath] [SECONDS] [FIRST_SEED] [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=cluster
case "${1:-}" in cluster|datapath) SIM=$1; shift ;; esac
SECONDS_BUDGET=${1:-60}
FIRST=${2:-$(( $(date +%s) % 1000000 * 1000 ))}
shift $(( $# < 2 ? $# : 2 ))
BIN=build/tests/${SIM}_sim
[ -x "$BIN" ] || scripts/build.sh
echo "$SIM simulator: seeds from $FIRST for ${SECONDS_BUDGET} s"
"$BIN" --seeds "$FIRST-18446744073709551614" --time "$SECONDS_BUDGET" "$@"

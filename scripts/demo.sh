#!/usr/bin/env bash
# README command 1: install, build, and run one demo node on an embedded
# default (two sparse file mdisks, pool0, a 1 GiB vdisk vd0) at
# nbd://127.0.0.1:10809/vd0. Ctrl-C stops it; the data stays in the data dir.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/sved --data-dir "${SVE_DATA_DIR:-$HOME/.local/share/sve/demo}" --demo "$@"

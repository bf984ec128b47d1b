#!/usr/bin/env bash
# NBD over TLS (pre-shared keys) against plain text, in one run, on a
# memory mdisk so that the protocol and the TLS record layer are what is
# measured; nbdkit's memory plugin, plain and with the same keys, as the
# peer. fio's nbd engine refuses a key file in its URI, so:
#   - 64 connections of 4 KiB random reads and writes (50/50), QD4 each,
#     from bench/nbd_load.py (libnbd's asynchronous calls, one event loop)
#   - nbdcopy reading 1 GiB in 1 MiB requests over 4 connections, 8 each
#
#   [SVE_BASELINE=<build dir>] bench/tls_bench.sh [RUNTIME_S]
#
# Needs a built tree (scripts/build.sh), python3-libnbd, nbdcopy, nbdkit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-10}
WORK=$(mktemp -d /tmp/sve-tls-bench-XXXXXX)
PORT=23809 ADMIN=23810 KIT=23811
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
source bench/common.sh
export SVE_ADMIN=127.0.0.1:$ADMIN
python3 -c "import secrets; print('bench:' + secrets.token_hex(32))" > "$WORK/keys.psk"

random_4k() {  # uri: ops/s of 4 KiB random 50/50 over 64 connections, QD4 each
  bench/nbd_load.py "$1" 64 4 "$RUNTIME" $((900 << 20)) |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ops_per_s"]))'
}

seq_1m() {  # uri: MiB/s of reading 1 GiB in 1 MiB requests, 4 connections x 8
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy --no-extents --connections=4 --requests=8 --request-size=1048576 "$1" null:
  t1=$(date +%s.%N)
  python3 -c "print(round(1024 / ($t1 - $t0)))"
}

both() {  # label plain-uri tls-uri: one row
  local p4 t4 p1 t1
  p4=$(random_4k "$2"); t4=$(random_4k "$3")
  p1=$(seq_1m "$2"); t1=$(seq_1m "$3")
  python3 -c "print(f'| $1 | $p4 | $t4 | {$t4 / $p4:.2f} | $p1 | $t1 | {$t1 / $p1:.2f} |')"
}

echo "| server | 4K random ops/s plain | TLS | TLS/plain | 1M seq read MiB/s plain | TLS | TLS/plain |"
echo "|---|---|---|---|---|---|---|"
sve_row() {  # build-dir label
  rm -rf "$WORK/sved"; mkdir -p "$WORK/sved"
  "$1/sved" --data-dir "$WORK/sved" --nbd 127.0.0.1:$PORT --admin 127.0.0.1:$ADMIN \
    --cores 2 --log-level warn --tls on --tls-psk "$WORK/keys.psk" &
  local pid=$!
  wait_port $ADMIN
  build/svectl mdisk add m0 memory:1100M >/dev/null
  build/svectl pool create p --extent-size 16M m0 >/dev/null
  build/svectl vdisk create v --pool p --size 1G >/dev/null
  # One host, by its key and by its address: both roads reach the same vdisk.
  build/svectl host create bench --nbd-identity bench --address 127.0.0.1 >/dev/null
  build/svectl vdisk map v bench >/dev/null
  both "$2" "nbd://127.0.0.1:$PORT/v" "nbds://bench@127.0.0.1:$PORT/v?tls-psk-file=$WORK/keys.psk"
  kill $pid; wait $pid 2>/dev/null || true
}
# SVE_BASELINE=DIR: also another build's sved, in the same run.
[ -n "${SVE_BASELINE:-}" ] && sve_row "$SVE_BASELINE" "sve (baseline)"
sve_row build "sve"

nbdkit --exit-with-parent -f -p $KIT --tls=on --tls-psk="$WORK/keys.psk" memory 1G 2>/dev/null &
wait_port $KIT
both "nbdkit memory" "nbd://127.0.0.1:$KIT/" "nbds://bench@127.0.0.1:$KIT/?tls-psk-file=$WORK/keys.psk"

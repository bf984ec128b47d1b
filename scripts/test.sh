#!/usr/bin/env bash
# README command 2: install, build, and run the whole test suite; then the
# sanitizer stage: an ASan+UBSan build running the unit tests, the fuzz
# corpora, the first simulator seed range and the bad-input integration
# test, halting on the first report. SVE_SKIP_SANITIZE=1 skips that stage.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure -j "${SVE_TEST_JOBS:-2}" --timeout 600)
[ "${SVE_SKIP_SANITIZE:-0}" = 1 ] && exit 0
echo "== sanitizer stage (ASan + UBSan)"
SVE_TARGETS="sve_unit_tests sve_actor_tests datapath_sim sved svectl fuzz_nbd_request_replay fuzz_nbd_handshake_replay
  fuzz_cluster_codec_replay fuzz_admin_request_replay fuzz_iscsi_text_replay fuzz_scsi_cdb_replay
  fuzz_iscsi_connection_replay" scripts/build.sh build-asan -DSVE_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS="-O1 -g1"
cd build-asan
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp
ctest --output-on-failure -j "${SVE_TEST_JOBS:-2}" --timeout 900 -L 'unit|fuzz|sanitize'

#!/usr/bin/env bash
# The full test suite: installs what is missing, builds with warnings as errors and runs
# every test, then the concurrency tests (ring, sessions, IO engine, daemon, metrics) under
# ThreadSanitizer, then the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# TP_TEST_SANITIZE=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc)
echo "== build (warnings are errors)"
scripts/build.sh build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTP_WERROR=ON
echo "== tests"
ctest --test-dir build-test --output-on-failure -j "$jobs"

if [ "${TP_TEST_SANITIZE:-1}" != 0 ]; then
  echo "== build with ThreadSanitizer; the concurrency tests under it"
  scripts/build.sh build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTP_WERROR=ON \
    -DTP_SANITIZE=thread
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
      -R 'unit\.check_(ring|service|io|page_cache|stages)|service\.(exact_once|two_daemons|kill_client|bad_lmdb)|metrics\.(prometheus|requests)'

  echo "== build with ASan + UBSan"
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DTP_WERROR=ON \
    -DTP_SANITIZE=address,undefined
  echo "== tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi

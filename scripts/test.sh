#!/usr/bin/env bash
# Installs what is missing, builds, and runs the default test suite (everything but the `full` label).
#   scripts/test.sh              Release build in build/, ctest -LE full
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, unit tests
#   scripts/test.sh --full       also the `full` label (full cross product, 1 Mi + 13 counts)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-default}
"$root/scripts/install-deps.sh"
case "$mode" in
  --sanitize)
    # The torch extension is not built here: an ASan module cannot load into the system python3.
    "$root/scripts/build.sh" "$root/build-asan" -DCOPRO_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPRO_TORCH=OFF
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # The nvcc compile checks (label nvcc) build device code only: nothing for the sanitizers to see.
    ctest --test-dir "$root/build-asan" --output-on-failure -j2 -L unit -LE "full|nvcc" --timeout 600
    ;;
  --full)
    "$root/scripts/build.sh" "$root/build"
    ctest --test-dir "$root/build" --output-on-failure -j2 --timeout 1800
    ;;
  *)
    "$root/scripts/build.sh" "$root/build"
    ctest --test-dir "$root/build" --output-on-failure -j2 -LE full --timeout 600
    ;;
esac

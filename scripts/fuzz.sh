#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) in their own build folder with clang-14, ASan + UBSan + libFuzzer
# (only the parser libraries and the targets), then runs each for FUZZ_SECONDS seconds (default 20)
# through ctest's label `fuzz`. docs/fuzzing.md: longer runs, reproducing a crash.
#   scripts/fuzz.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-fuzz}
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPRO_FUZZ=ON \
  -DCOPRO_BUILD_TESTS=OFF -DCOPRO_BUILD_BENCH=OFF -DCOPRO_TORCH=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" --target copro_fuzzers -j"$(nproc)"
ctest --test-dir "$build" -L fuzz --output-on-failure -j"$(nproc)"

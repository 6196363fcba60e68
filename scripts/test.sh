#!/usr/bin/env bash
# Installs what is missing, builds, and runs the default test suite (everything but the `full` label).
#   scripts/test.sh              Release build in build/, ctest -LE full
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, unit tests
#   scripts/test.sh --full       also the `full` label (full cross product, 1 Mi + 13 counts)
#   scripts/test.sh --tsan       ThreadSanitizer build in build-tsan/: the transport unit tests (those that
#                                fork excluded) and the `mp` label (docs/faults.md, "Sanitizers")
#   scripts/test.sh --asan-mp    ASan + UBSan build in build-asan/, the `mp` label (leak checks off)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-default}
"$root/scripts/install-deps.sh"
# What the `mp` label runs (and the transport unit tests): the sanitizer modes build only these targets
# (a full sanitized build takes about 16 minutes on 2 cores). Targets this configuration lacks (no MPI,
# no UCX) are left out by build_targets.
mp_targets="copro_unit_transport copro-perf copro-sim copro_c_api_mp copro_conformance_mp copro_mp_test
  copro_moe_mp_test copro_pxn_mp_test copro_vnode_test copro_nccl copro_nccl_mp copro_nccl_mp_real_header
  copro_fault_rank copro_ucx_fork_test copro_verbs_fault_test"
build_targets() { # build_targets DIR cmake-args... : configures DIR and builds the mp_targets it has
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -G Ninja -DCOPRO_WERROR=ON "$@" >/dev/null
  local have=() t
  for t in $mp_targets; do
    if ninja -C "$dir" -t query "$t" >/dev/null 2>&1; then have+=("$t"); fi
  done
  cmake --build "$dir" -j"$(nproc)" --target "${have[@]}"
}
case "$mode" in
  --sanitize)
    # The torch extension is not built here: an ASan module cannot load into the system python3.
    # -O1 -g1 (line tables): what ASan's documentation suggests, and 2.7x less compile time than -O2 -g
    # (CI time); reports still carry file:line.
    "$root/scripts/build.sh" "$root/build-asan" -DCOPRO_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPRO_TORCH=OFF \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # The nvcc compile checks (label nvcc) build device code only: nothing for the sanitizers to see.
    ctest --test-dir "$root/build-asan" --output-on-failure -j2 -L unit -LE "full|nvcc" --timeout 600
    ;;
  --tsan)
    build_targets "$root/build-tsan" -DCOPRO_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPRO_TORCH=OFF
    # UCX's malloc/mmap hooks patch the allocator under TSan's own interceptors and crash it.
    export UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_EVENTS=no
    export TSAN_OPTIONS="suppressions=$root/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1"
    # Tests that fork() are left out: the bootstrap's root thread (and UCX's async thread) run in the
    # parent, and TSan does not support a child of a multi-threaded process going on to start threads.
    "$root/build-tsan/tests/copro_unit_transport" \
      --gtest_filter='-Shm.*:ShmScaleInitiation.*:Bootstrap.Fork*:Bootstrap.Foreign*:Bootstrap.Forged*:Bootstrap.AFailedRendezvous*:Bootstrap.EnvironmentForm*'
    # Also out: the fork()ing ucx and verbs fault tests (as above), fault_quick, whose exit-time limit
    # (2 x COPRO_TIMEOUT) does not hold under TSan's 5-15x slowdown, and the copro-perf sweeps (timings
    # mean nothing under TSan; copro_perf_mp_shm took 172 s of its 180, the mpi one timed out): the
    # conformance tests run the same backends and engines.
    ctest --test-dir "$root/build-tsan" --output-on-failure -j1 -L mp -LE full -E 'fork|fault|copro_perf_mp' \
      --timeout 1200
    ;;
  --asan-mp)
    build_targets "$root/build-asan" -DCOPRO_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPRO_TORCH=OFF
    # detect_leaks=0: LeakSanitizer reports blocks that Open MPI's modules allocate and never free when
    # dlclose()d at MPI_Finalize (their stacks end in an unloaded library, so nothing to suppress by name).
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_EVENTS=no
    ctest --test-dir "$root/build-asan" --output-on-failure -j2 -L mp -LE full --timeout 1200
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

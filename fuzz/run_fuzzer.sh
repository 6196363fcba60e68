#!/bin/sh
# Runs one libFuzzer target for FUZZ_SECONDS (default 300) from its seed corpus; new inputs go to a
# working corpus in the build tree, never into the source tree. A crash, leak, timeout (10 s per input) or
# out-of-memory (2 GiB) fails the run and leaves the input as crash-*/leak-*/timeout-*/oom-* in WORK.
#   run_fuzzer.sh FUZZER SEED_DIR WORK_DIR
set -eu
fuzzer=$1
seeds=$2
work=$3
mkdir -p "$work/corpus"
cd "$work"
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-300}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -print_final_stats=1 "$work/corpus" "$seeds"

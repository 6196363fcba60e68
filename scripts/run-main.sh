#!/usr/bin/env bash
# The main job: copro-sim's what-if study on the bundled default topology (deepseek-v3: 2048 H800 GPUs on a
# multi-plane fat-tree): all-reduce over every GPU and all-to-all over an EP64 group, 1 MiB to 64 MiB per
# rank; prints a table and writes out/whatif.csv and out/whatif.svg (docs/copro-sim.md). Arguments go to
# `copro-sim whatif` (e.g. --vary nic_bw=50GB/s,100GB/s). Then the measured counterpart: copro-perf
# all-reduce on 4 in-process ranks, 16 B to 64 MiB, nccl-tests style.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
"$root/build/tools/copro-sim" whatif --out "$root/out/whatif" "$@"
"$root/build/bench/copro-perf" allreduce -b 16 -e 64M -f 4 -c 1 --transport inproc --ranks 4

#!/usr/bin/env bash
# The main job on the bundled default: copro-perf all-reduce on 4 in-process ranks, 16 B to 64 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
"$root/build/bench/copro-perf" allreduce -b 16 -e 64M -f 4 -c 1 --transport inproc --ranks 4 "$@"

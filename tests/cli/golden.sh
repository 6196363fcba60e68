#!/bin/sh
# Golden outputs of copro-sim (tests/golden/README.md): small deterministic runs whose text, CSV, SVG and
# Chrome-trace outputs must match the checked-in files byte for byte. Any change to the simulator's
# timing, the algorithms' Programs or the output formats shows up here.
#
#   tests/cli/golden.sh COPRO_SIM                 compare (what ctest runs)
#   tests/cli/golden.sh COPRO_SIM --regenerate    rewrite tests/golden/ (also: REGEN_GOLDEN=1)
set -eu
sim=$1
regen=${REGEN_GOLDEN:-0}
if [ "${2:-}" = "--regenerate" ]; then regen=1; fi
case $sim in /*) ;; *) sim=$(pwd)/$sim ;; esac
golden=$(cd "$(dirname "$0")/../golden" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Only the bundled topologies, whatever the caller's environment says.
unset COPRO_TOPOLOGY_PATH
failed=0

# check NAME FILE: compares (or regenerates) tests/golden/NAME with FILE.
check() {
  if [ "$regen" = 1 ]; then
    cp "$2" "$golden/$1"
    echo "regenerated $1"
  elif cmp -s "$2" "$golden/$1"; then
    echo "ok $1"
  else
    echo "MISMATCH $1 (diff expected actual):"
    diff -u "$golden/$1" "$2" | head -40 || true
    failed=1
  fi
}

# run NAME ARGS...: runs copro-sim and checks its standard output.
run() {
  name=$1
  shift
  "$sim" "$@" --no-wall --quiet > "$work/$name"
  check "$name" "$work/$name"
}

# Ring all-reduce on a 16-GPU single switch (the alpha-beta-gamma network), two sizes.
run ring-allreduce-single-switch-16.txt run --topology single-switch-1024 --set gpus=16 --collective allreduce \
  --size 1M,16M --algo ring
# All-to-all on one H800 server: the planner's choice, and Bruck as CSV.
run alltoall-h800-node.txt run --topology h800-node --collective alltoall --size 1M,64M
run alltoall-bruck-h800-node.csv run --topology h800-node --collective alltoall --size 64K,1M --algo bruck --csv
# Hierarchical all-reduce on a 4-server (32-GPU) 2-tier fat tree.
run hier-allreduce-fat-tree-4.txt run --topology fat-tree-2tier-1024 --set nodes=4 --collective allreduce \
  --size 16M --algo hier --top 8
# A sweep: table, CSV and SVG plot.
run sweep-allgather-h800-node.txt sweep --topology h800-node --collective allgather --sweep algo=ring,bruck \
  --sweep size=64K,1M,16M --csv sweep.csv --plot sweep.svg
check sweep-allgather-h800-node.csv sweep.csv
check sweep-allgather-h800-node.svg sweep.svg
# A Chrome trace of 4 ranks.
run ring-allreduce-h800-4ranks.txt run --topology h800-node --ranks 4 --collective allreduce --size 64K --algo ring \
  --trace trace.json --top 2
check ring-allreduce-h800-4ranks.trace.json trace.json

if [ "$failed" != 0 ]; then
  echo "golden outputs differ; if the change is intended, regenerate with: tests/cli/golden.sh $1 --regenerate"
  exit 1
fi

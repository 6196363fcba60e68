#!/bin/sh
# Rank folding at scale (docs/simulator.md, "Symmetry"): the ring all-reduce of 64 MiB on each given
# topology, folded (the default) and with every rank simulated (--no-symmetry), must print the same
# table: time, events, flows and the busiest links' bytes, utilization and busy time. The full runs take
# minutes at 4096 ranks, hence the `full` label.
#
#   tests/cli/symmetry_check.sh COPRO_SIM TOPOLOGY...
set -eu
sim=$1
shift
status=0
for topology in "$@"; do
  folded=$("$sim" run -q --no-wall -t "$topology" -c allreduce -s 64M -a ring --top 8)
  full=$("$sim" run -q --no-wall -t "$topology" -c allreduce -s 64M -a ring --top 8 --no-symmetry)
  if [ "$folded" = "$full" ]; then
    echo "ok $topology"
  else
    echo "MISMATCH on $topology (folded, then every rank):"
    echo "$folded"
    echo "$full"
    status=1
  fi
done
exit $status

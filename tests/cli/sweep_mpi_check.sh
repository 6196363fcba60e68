#!/bin/sh
# ctest copro_sim_sweep_mpi: `mpirun -np 2 copro-sim sweep ...` shares the points over two MPI ranks and
# gives the table and CSV of the serial run (compared after sorting, as docs/copro-sim.md promises).
# Usage: sweep_mpi_check.sh MPIEXEC COPRO_SIM
set -eu
mpiexec=$1
sim=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
args="-t single-switch-1024 -c allreduce --sweep size=1M,4M,16M --sweep ranks=8,16,32 --no-wall -q"
# shellcheck disable=SC2086
"$sim" sweep $args --sweep algo=ring,rhd --csv "$dir/serial.csv" >"$dir/serial.txt"
# shellcheck disable=SC2086
"$mpiexec" -np 2 --oversubscribe "$sim" sweep $args --sweep algo=ring,rhd --csv "$dir/mpi.csv" >"$dir/mpi.txt" \
  2>"$dir/mpi.err"
grep -q "18 points over 2 MPI ranks" "$dir/mpi.err" || { echo "the sweep was not shared over 2 ranks:"; cat "$dir/mpi.err"; exit 1; }
for f in serial mpi; do
  grep -v '^# csv:' "$dir/$f.txt" | sort >"$dir/$f.sorted"
  sort "$dir/$f.csv" >"$dir/$f.csv.sorted"
done
rows=$(grep -c 'ring\|rhd' "$dir/serial.sorted" || true)
[ "$rows" -eq 18 ] || { echo "expected 18 rows, serial gave $rows"; cat "$dir/serial.txt"; exit 1; }
diff "$dir/serial.sorted" "$dir/mpi.sorted" || { echo "table differs"; exit 1; }
diff "$dir/serial.csv.sorted" "$dir/mpi.csv.sorted" || { echo "CSV differs"; exit 1; }
echo "sweep over 2 MPI ranks equals the serial sweep: 18 rows"

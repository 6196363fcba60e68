#!/bin/sh
# ctest copro_study_mpi: `mpirun -np 2 copro-study S --quick` shares the study's simulations over two MPI
# ranks and writes the files of the serial run: CSV and SVG byte for byte, the markdown but for the lines
# that name the output folder or the wall time (studies/README.md, "On several machines").
# Usage: study_mpi_check.sh MPIEXEC COPRO_STUDY STUDY...
set -eu
mpiexec=$1
tool=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for s in "$@"; do
  "$tool" "$s" --quick --quiet --out "$dir/serial" >/dev/null
  "$mpiexec" -np 2 --oversubscribe "$tool" "$s" --quick --quiet --out "$dir/mpi" >"$dir/mpi.out" 2>"$dir/mpi.err" ||
    { echo "mpirun copro-study $s failed:"; cat "$dir/mpi.err"; exit 1; }
  grep -q "shared over 2 MPI ranks" "$dir/mpi.err" || { echo "study $s was not shared:"; cat "$dir/mpi.err"; exit 1; }
  n=$(grep -c "wrote " "$dir/mpi.out" || true)
  [ "$n" -eq 1 ] || { echo "study $s: expected one 'wrote' line (rank 0), got $n"; cat "$dir/mpi.out"; exit 1; }
done
found=0
for f in "$dir"/serial/*; do
  name=$(basename "$f")
  found=$((found + 1))
  case "$name" in
    *.md)
      grep -v -e "--out " -e "wall time" "$f" >"$dir/a.md"
      grep -v -e "--out " -e "wall time" "$dir/mpi/$name" >"$dir/b.md"
      diff "$dir/a.md" "$dir/b.md" || { echo "$name differs"; exit 1; } ;;
    *) cmp "$f" "$dir/mpi/$name" || { echo "$name differs"; exit 1; } ;;
  esac
done
echo "copro-study over 2 MPI ranks wrote the serial run's $found files: $*"

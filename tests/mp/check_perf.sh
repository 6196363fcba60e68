#!/bin/sh
# Runs copro-perf under mpirun and checks its nccl-tests table: every expected size has a row, every
# #wrong column (copro's and each --compare peer's) is 0, and the peers' columns are present.
#   check_perf.sh MPIEXEC NP COPRO_PERF [--expect-peers mpi,gloo] [--rows N] -- copro-perf arguments...
set -eu
mpiexec=$1
np=$2
perf=$3
shift 3
peers=""
rows=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case $1 in
    --expect-peers) peers=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    *) echo "check_perf.sh: unknown option $1"; exit 2 ;;
  esac
done
[ $# -gt 0 ] && shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
"$mpiexec" -np "$np" --oversubscribe "$perf" "$@" >"$out" 2>&1 || status=$?
cat "$out"
if [ "$status" -ne 0 ]; then
  echo "FAIL: copro-perf exited with status $status"
  exit 1
fi
# Data rows start with two spaces and a size; header lines start with '#'.
awk -v peers="$peers" -v rows="$rows" '
  /^#.*out-of-place.*in-place/ && header == "" { header = $0 }
  /^  *[0-9]+ +[0-9]+ / {
    n++
    # copro: the out-of-place #wrong is field 9, in-place is 4 fields after it (plus %bound if shown).
    for (i = 6; i <= NF; i++) if ($i ~ /^[0-9.]+%$/) bound = 1
    oop = $9; ip = bound ? $14 : $13
    if (oop != "0" || ip != "0") { print "FAIL: copro #wrong " oop "/" ip " in: " $0; bad = 1 }
    first = bound ? 15 : 14
    np = split(peers, names, ",")
    for (k = 0; k < np; k++) {
      w = $(first + 4 * k + 2)
      if (w != "0") { print "FAIL: " names[k + 1] " #wrong \"" w "\" in: " $0; bad = 1 }
    }
    if (NF != first - 1 + 4 * np) { print "FAIL: " NF " columns, expected " first - 1 + 4 * np " in: " $0; bad = 1 }
  }
  END {
    if (n == 0) { print "FAIL: no result rows"; exit 1 }
    if (rows != "" && n != rows) { print "FAIL: " n " rows, expected " rows; exit 1 }
    np = split(peers, names, ",")
    for (k = 1; k <= np; k++) if (index(header, names[k] " (out-of-place)") == 0) { print "FAIL: no " names[k] " columns"; bad = 1 }
    if (bad) exit 1
    print "OK: " n " rows, #wrong 0 everywhere"
  }' "$out"

#!/bin/sh
# Runs copro-perf under mpirun and checks its nccl-tests table: every expected size has a row, every
# #wrong column (copro's and each --compare peer's) is 0, the peers' columns are present and the footer
# reads "# Out of bounds values : 0 OK".
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
# Data rows start with spaces and a size; header and footer lines start with '#'. The columns are
# nccl-tests': size count type redop root, out-of-place time algbw busbw #wrong ($9), in-place ($10-$13),
# then 4 per peer (time busbw #wrong ratio), then %bound when shown.
awk -v peers="$peers" -v rows="$rows" '
  /^# +size +count +type/ && header == "" { header = prev }
  { prev = $0 }
  /^# Out of bounds values : / { footer = $0 }
  /^ *[0-9]+ +[0-9]+ / {
    n++
    bound = ($NF ~ /%$/) ? 1 : 0
    if ($9 != "0" || $13 != "0") { print "FAIL: copro #wrong " $9 "/" $13 " in: " $0; bad = 1 }
    np = split(peers, names, ",")
    for (k = 0; k < np; k++) {
      w = $(14 + 4 * k + 2)
      if (w != "0") { print "FAIL: " names[k + 1] " #wrong \"" w "\" in: " $0; bad = 1 }
    }
    if (NF != 13 + 4 * np + bound) { print "FAIL: " NF " columns, expected " 13 + 4 * np + bound " in: " $0; bad = 1 }
  }
  END {
    if (n == 0) { print "FAIL: no result rows"; exit 1 }
    if (rows != "" && n != rows) { print "FAIL: " n " rows, expected " rows; exit 1 }
    if (footer != "# Out of bounds values : 0 OK") { print "FAIL: footer \"" footer "\", expected \"# Out of bounds values : 0 OK\""; bad = 1 }
    np = split(peers, names, ",")
    for (k = 1; k <= np; k++) if (index(header, names[k] " (out-of-place)") == 0) { print "FAIL: no " names[k] " columns"; bad = 1 }
    if (bad) exit 1
    print "OK: " n " rows, #wrong 0 everywhere"
  }' "$out"

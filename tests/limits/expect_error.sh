#!/bin/sh
# Runs a command that must fail cleanly on a hostile input (issue 16): a non-zero exit below 128 (no abort,
# no signal), exactly one line on stderr, matching REGEX (grep -E), within 10 seconds, and, unless
# LIMITS_TEST_NO_MEMORY_CAP=1, under a 1 GiB address-space cap (ulimit -v). A command may read a file this
# script writes first: SETUP is a shell command run in a scratch directory that is the working directory.
#   expect_error.sh SETUP REGEX command args...
set -u
setup=$1
regex=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
sh -c "$setup" || { echo "FAIL: setup failed: $setup"; exit 1; }
cap=1048576
if [ "${LIMITS_TEST_NO_MEMORY_CAP:-0}" = 1 ]; then cap=unlimited; fi
start=$(date +%s%N)
(ulimit -v "$cap" && exec timeout -s KILL 20 "$@") > out.txt 2> err.txt
status=$?
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
cat out.txt
cat err.txt
printf '(exit %s after %s ms, address space cap %s KiB)\n' "$status" "$ms" "$cap"
fail() { echo "FAIL: $*"; exit 1; }
[ "$status" -ne 0 ] || fail "exit status 0, expected an error"
[ "$status" -lt 128 ] || fail "exit status $status: killed by a signal (abort, memory, timeout?)"
lines=$(wc -l < err.txt)
[ "$lines" -eq 1 ] || fail "$lines lines on stderr, expected one error line"
grep -Eq -- "$regex" err.txt || fail "the error does not match '$regex'"
[ "$ms" -lt 10000 ] || fail "took $ms ms, expected under 10 s"
echo "OK"

#!/bin/sh
# Runs a command that must fail cleanly: a non-zero exit status below 128 (no abort, no signal), output
# matching REGEX (grep -E), within SECONDS seconds.
#   expect_error.sh SECONDS REGEX command args...
set -u
limit=$1
regex=$2
shift 2
start=$(date +%s%N)
out=$("$@" 2>&1)
status=$?
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
printf '%s\n(exit %s after %s ms)\n' "$out" "$status" "$ms"
if [ "$status" -eq 0 ]; then
  echo "FAIL: exit status 0, expected an error"
  exit 1
fi
if [ "$status" -ge 128 ]; then
  echo "FAIL: exit status $status: killed by a signal (abort?), expected a clean error"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then
  echo "FAIL: the message does not match '$regex'"
  exit 1
fi
if [ "$ms" -ge $((limit * 1000)) ]; then
  echo "FAIL: took $ms ms, expected under $limit s"
  exit 1
fi
echo "OK"

#!/bin/sh
# A Program dumped to JSON loads back and passes the validator; the same Program with one wait raised
# beyond what its signals reach is rejected with a message naming rank, lane and op.
set -eu
info=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$info" --dump allreduce 4K 5 --algo rhd > "$dir/ok.json"
"$info" --validate "$dir/ok.json" | tee "$dir/ok.txt"
grep -q '^valid' "$dir/ok.txt"
# Raise the first wait's threshold from 1 to 9.
sed '0,/"op":"wait","sem":\([0-9]*\),"value":1}/s//"op":"wait","sem":\1,"value":9}/' "$dir/ok.json" > "$dir/broken.json"
if "$info" --validate "$dir/broken.json" > "$dir/broken.txt"; then
  echo "broken Program accepted"; exit 1
fi
cat "$dir/broken.txt"
grep -q 'rank 0 lane 0 op 1 (wait)' "$dir/broken.txt"

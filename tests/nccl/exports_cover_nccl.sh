#!/bin/sh
# Every function NCCL's installed nccl.h declares (nccl*, not the pnccl* aliases) is defined by
# libcopro_nccl.so, so that under LD_PRELOAD no nccl* call of a program built for NCCL falls through to the
# real libnccl with one of copro's communicators. Usage: exports_cover_nccl.sh <NCCL's nccl.h> <libcopro_nccl.so>
set -eu
header=$1
lib=$2
declared=$(grep -o '[ *]nccl[A-Za-z]*(' "$header" | tr -d ' *(' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
missing=$(printf '%s\n' "$declared" | while read -r f; do
  printf '%s\n' "$exported" | grep -qx "$f" || printf '%s ' "$f"
done)
if [ -n "$missing" ]; then
  echo "libcopro_nccl.so lacks functions that $header declares: $missing"
  exit 1
fi
echo "libcopro_nccl.so defines all $(printf '%s\n' "$declared" | wc -l) nccl* functions of $header"

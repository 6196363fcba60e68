#!/usr/bin/env bash
# Study e: PXN 0/1/2 on rail-optimized-128.yaml: spine bytes (none with PXN; checked) and pairwise all-to-all
# time by size and rank count; deepseek-v3.yaml's host root-complex bytes with and without PXN.
# Writes docs/studies/e-pxn-rail-optimized.{csv,svg,md}. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study e "$@"

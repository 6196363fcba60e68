#!/usr/bin/env bash
# Study c: Unified scale-up/scale-out (topologies/unified-64.yaml at 160 and 900 GB/s per GPU) vs today's split
# (deepseek-v3.yaml) for EP64 MoE dispatch/combine, forward and direct paths, uniform and Zipf routing.
# Writes docs/studies/c-unified-vs-split-scaleup-scaleout.{csv,svg,md}. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study c "$@"

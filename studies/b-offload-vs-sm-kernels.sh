#!/usr/bin/env bash
# Study b: Co-processor offload (0 SMs) vs communication kernels on 10/20/32 SMs: step time of workloads/moe-layer.yaml and
# workloads/dualpipe-step.yaml on deepseek-v3.yaml (workload engine).
# Writes docs/studies/b-offload-vs-sm-kernels.{csv,svg,md}. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study b "$@"

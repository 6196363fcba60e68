#!/usr/bin/env bash
# Study a: multi-plane (deepseek-v3.yaml) vs multi-rail (mrft-2048.yaml) fat-tree on 2048 H800: all-to-all
# (EP64) and all-reduce (2048 GPUs) by size. Writes docs/studies/a-multiplane-vs-multirail.{csv,svg,md}.
# About a minute on 2 cores. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study a "$@"
